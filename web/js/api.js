// The HTTP API client: JSON in and out, the caller's token, one error shape, saved sign-ins.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export async function api(path, { method = "GET", body, token, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body instanceof Blob) {
    // a file goes as it is (a tracking CSV), typed by the caller
    init.headers["Content-Type"] = body.type;
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection and try again.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status,
      error.message || response.statusText, error.details || {});
  }
  return data;
}

// A signed-in person per page family: "staff" for the studio and console, "viewer" for watching.
const storageKey = (scope) => `livecommerce.${scope}`;

export function loadSession(scope) {
  try {
    const session = JSON.parse(localStorage.getItem(storageKey(scope)) || "null");
    if (session && session.token && session.expires_at > Date.now()) return session;
  } catch {
    // an unreadable entry is the same as none
  }
  localStorage.removeItem(storageKey(scope));
  return null;
}

function saveSession(scope, answer) {
  const session = { token: answer.token, user: answer.user, expires_at: Date.now() + answer.expires_in * 1000 };
  localStorage.setItem(storageKey(scope), JSON.stringify(session));
  return session;
}

export function forgetSession(scope) {
  localStorage.removeItem(storageKey(scope));
}

// A guest's token hands the account the guest's orders, saved details and draw entries.
export async function signIn(scope, login, password, token) {
  return saveSession(scope, await api("/api/auth/login", { method: "POST", token, body: { login, password } }));
}

// An account whose login is an email or a phone; a guest's token makes the guest that account.
export async function signUp(scope, login, password, token) {
  return saveSession(scope, await api("/api/auth/signup", { method: "POST", token, body: { login, password } }));
}

export async function joinAsGuest(scope, displayName) {
  return saveSession(scope, await api("/api/auth/guest", { method: "POST", body: { display_name: displayName } }));
}

// A fresh idempotency key for one purchase attempt, reused when that attempt is retried.
export function idempotencyKey() {
  return crypto.randomUUID();
}
