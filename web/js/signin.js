// Staff sign-in for the studio and the console: reuse a saved session or show the form.

import { ApiError, api, forgetSession, loadSession, signIn } from "./api.js";
import { errorText } from "./i18n.js";
import { $, busy, say, show } from "./ui.js";

const SCOPE = "staff";

// Resolves with a live session once the person is signed in (now, or after the form).
export async function staffSession() {
  const saved = loadSession(SCOPE);
  if (saved) {
    try {
      await api("/api/me", { token: saved.token });
      return saved;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      forgetSession(SCOPE);
    }
  }
  return waitForSignIn();
}

function waitForSignIn() {
  const panel = $("#signin");
  const form = $("#signin-form");
  const result = $("#signin-result");
  show(panel, true);
  form.elements.login.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      say(result, "");
      try {
        const session = await busy(form, () => signIn(SCOPE, form.elements.login.value, form.elements.password.value));
        show(panel, false);
        resolve(session);
      } catch (error) {
        say(result, errorText(error), "error");
      }
    });
  });
}

export function signOutButton(button) {
  button.addEventListener("click", () => {
    forgetSession(SCOPE);
    location.reload();
  });
}
