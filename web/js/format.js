// Money from integer minor units, numbers, countdowns and times, and what an order bought, in
// the page's language.

import { language, t } from "./i18n.js";

const moneyFormats = new Map();

function moneyFormat(currency) {
  const key = `${language()}:${currency}`;
  if (!moneyFormats.has(key)) {
    moneyFormats.set(key, new Intl.NumberFormat(language(), { style: "currency", currency }));
  }
  return moneyFormats.get(key);
}

export function number(value) {
  return new Intl.NumberFormat(language()).format(value);
}

export function money(minor, currency) {
  const format = moneyFormat(currency);
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

// Parse "12.50" typed by an operator into minor units of the currency; null when not a price.
export function parseMoney(text, currency) {
  const digits = moneyFormat(currency).resolvedOptions().maximumFractionDigits;
  const match = /^\s*(\d+)(?:[.,](\d*))?\s*$/.exec(text);
  if (!match || (match[2] || "").length > digits) return null;
  const fraction = (match[2] || "").padEnd(digits, "0");
  return Number(match[1]) * 10 ** digits + Number(fraction || 0);
}

function clock(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

// Time left until an ISO timestamp or epoch milliseconds, as "m:ss"; "0:00" once passed.
export function countdown(until, now = Date.now()) {
  return clock((toMillis(until) - now) / 1000);
}

export function elapsed(since, now = Date.now()) {
  return clock((now - toMillis(since)) / 1000);
}

export function toMillis(when) {
  if (typeof when === "number") return when < 1e12 ? when * 1000 : when;
  return Date.parse(when);
}

export function timeOfDay(when) {
  return new Date(toMillis(when)).toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTime(when) {
  return new Date(toMillis(when)).toLocaleString(language());
}

// Run `tick` now and then every second; returns a function that stops it.
export function everySecond(tick) {
  tick();
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}

// What an order bought, by name: "Green tea · 250 g × 2".
export function orderItem(order) {
  return t("order.item", { product: order.product, variant: order.sku_name, quantity: number(order.quantity) });
}
