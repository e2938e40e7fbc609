// Small DOM helpers shared by the pages. User text only ever goes in through textContent.

import { t } from "./i18n.js";

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`missing element ${selector}`);
  return node;
}

export function show(node, visible) {
  node.hidden = !visible;
}

// A short message in a live region: "info", "ok" or "error".
export function say(node, text, tone = "info") {
  node.textContent = text;
  node.dataset.tone = tone;
  node.hidden = !text;
}

export function roomId() {
  return Number(document.body.dataset.roomId);
}

// Disable a form's controls while an async action runs, then say its outcome.
export async function busy(form, action) {
  const controls = [...form.querySelectorAll("button, input, select, textarea")];
  const before = controls.map((c) => c.disabled);
  controls.forEach((c) => (c.disabled = true));
  try {
    return await action();
  } finally {
    controls.forEach((c, i) => (c.disabled = before[i]));
  }
}

// Copy to the clipboard and say so on the button for a moment.
export async function copyText(button, text) {
  const before = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = t("copy.done");
  } catch {
    button.textContent = t("copy.failed");
  }
  setTimeout(() => (button.textContent = before), 2000);
}

// A sheet over the page (bottom on a phone, beside the video when wide): open, close, toggle.
export function sheet(node, open) {
  node.hidden = !open;
  for (const opener of document.querySelectorAll(`[aria-controls="${node.id}"]`)) {
    opener.setAttribute("aria-expanded", String(open));
  }
  if (open) {
    const focusable = node.querySelector("h2, [autofocus]");
    if (focusable) focusable.focus({ preventScroll: true });
  }
}

// Buttons with aria-controls open and close their sheet; a sheet's [data-close] button closes it.
export function setupSheets() {
  for (const opener of document.querySelectorAll("button[aria-controls]")) {
    const target = document.getElementById(opener.getAttribute("aria-controls"));
    if (!target || !target.classList.contains("sheet")) continue;
    opener.setAttribute("aria-expanded", "false");
    opener.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".sheet")) if (other !== target) sheet(other, false);
      sheet(target, target.hidden);
    });
  }
  for (const closer of document.querySelectorAll(".sheet [data-close]")) {
    closer.addEventListener("click", () => sheet(closer.closest(".sheet"), false));
  }
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const open of document.querySelectorAll(".sheet:not([hidden])")) sheet(open, false);
  });
}

// A trigger that runs `task` soon, at most once per `intervalMs` however often it is pulled.
export function throttled(task, intervalMs) {
  let timer = null;
  let last = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(async () => {
      last = Date.now();
      try {
        await task();
      } finally {
        timer = null;
      }
    }, Math.max(0, last + intervalMs - Date.now()));
  };
}
