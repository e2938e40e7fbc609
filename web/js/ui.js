// Small DOM helpers shared by the pages. User text only ever goes in through textContent.

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

export async function copyText(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
  setTimeout(() => (button.textContent = "Copy"), 2000);
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
