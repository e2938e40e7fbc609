// The pages' languages: one message file per language under /static/i18n/ (languages.json lists
// them), chosen from the browser's languages or the reader's switch, and remembered.
//
//   <button data-i18n="watch.buy">Buy</button>          text from the message "watch.buy"
//   <input data-i18n-attr="placeholder=chat.placeholder">  attributes, "name=key;name=key"
//   t("watch.left", { count: 5 })                       "{count}" filled in; {one, other} by plural
//   errorText(error)                                    a server error by its code, else its message

const STORAGE_KEY = "livecommerce.language";
const FALLBACK = "en";
const ROOT = "/static/i18n/";

async function fetchJson(name) {
  const response = await fetch(`${ROOT}${name}.json`);
  if (!response.ok) throw new Error(`messages ${name}: HTTP ${response.status}`);
  return response.json();
}

const languages = await fetchJson("languages");
const fallback = await fetchJson(FALLBACK);
let current = FALLBACK;
let messages = fallback;
let plurals = new Intl.PluralRules(FALLBACK);

// The stored choice, else the first of the browser's languages we have (exactly, or by its
// primary subtag: "zh-Hans-CN" and "zh" find "zh-CN", "en-GB" finds "en").
export function preferredLanguage(stored, browserLanguages, available) {
  if (stored && available.includes(stored)) return stored;
  for (const wanted of browserLanguages) {
    const exact = available.find((code) => code.toLowerCase() === wanted.toLowerCase());
    if (exact) return exact;
    const primary = wanted.split("-")[0].toLowerCase();
    const near = available.find((code) => code.split("-")[0].toLowerCase() === primary);
    if (near) return near;
  }
  return FALLBACK;
}

export function language() {
  return current;
}

function message(key) {
  return key in messages ? messages[key] : fallback[key];
}

export function has(key) {
  return message(key) !== undefined;
}

export function t(key, params = {}) {
  let text = message(key);
  if (text === undefined) return key;
  if (typeof text === "object") text = text[plurals.select(params.count ?? 0)] ?? text.other;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// What to tell a person about a failed request: our words for its code, else the server's.
export function errorText(error) {
  const key = `error.${error.code}`;
  return has(key) ? t(key) : error.message;
}

export function translate(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [name, key] = pair.split("=");
      node.setAttribute(name.trim(), t(key.trim()));
    }
  }
}

const listeners = [];

// `render` runs again whenever the reader picks another language.
export function onLanguage(render) {
  listeners.push(render);
}

export async function setLanguage(code) {
  messages = code === FALLBACK ? fallback : await fetchJson(code);
  current = code;
  plurals = new Intl.PluralRules(code);
  document.documentElement.lang = code;
  translate();
  for (const render of listeners) render();
}

// A language picker in every element marked data-lang-switch.
function switches() {
  for (const slot of document.querySelectorAll("[data-lang-switch]")) {
    const select = document.createElement("select");
    select.className = "lang-switch";
    select.setAttribute("data-i18n-attr", "aria-label=language.choose");
    for (const [code, name] of Object.entries(languages)) {
      const option = new Option(name, code);
      option.lang = code;
      select.append(option);
    }
    select.value = current;
    select.addEventListener("change", async () => {
      localStorage.setItem(STORAGE_KEY, select.value);
      await setLanguage(select.value);
      for (const other of document.querySelectorAll(".lang-switch")) other.value = select.value;
    });
    slot.replaceChildren(select);
  }
}

try {
  await setLanguage(preferredLanguage(localStorage.getItem(STORAGE_KEY), navigator.languages || [], Object.keys(languages)));
} catch {
  // a language file that cannot be read leaves the page in English rather than blank
  await setLanguage(FALLBACK);
}
switches();
translate();
