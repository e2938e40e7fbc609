// The buyer's orders, phone first: every order of this device's viewer account with its status
// and parcel; one order's history, cancel before it ships, a return or refund request after.
// Changes arrive without reloading: the page asks for its order events after the last one it
// has (every few seconds while shown, and at once when shown again).

import { api, loadSession } from "./api.js";
import { dateTime, money, orderItem } from "./format.js";
import { errorText, onLanguage, t } from "./i18n.js";
import { $, busy, h, say, show } from "./ui.js";

const SCOPE = "viewer"; // the watch page's sign-in
const POLL_MS = 3000;
const CANCELLABLE = new Set(["reserved", "paid"]);
const RETURNABLE = new Set(["shipped", "delivered"]);

const orders = new Map();
const histories = new Map(); // order id -> its events, once the order was opened
let me = null;
let after = null;
let openId = null;

const room = new URLSearchParams(location.search).get("room");
if (room && /^\d+$/.test(room)) $("#back").href = `/watch/${room}`;

function line(order) {
  return t("orders.line", { id: order.order_id, item: orderItem(order), amount: money(order.amount_minor, order.currency) });
}

function parcelText(order) {
  return order.shipment ? t("orders.parcel_line", { carrier: order.shipment.carrier, tracking: order.shipment.tracking_number }) : "";
}

function renderList() {
  const list = [...orders.values()].sort((a, b) => b.order_id - a.order_id);
  $("#order-cards").replaceChildren(...list.map((order) =>
    h("li", { class: "order-card", dataset: { orderId: order.order_id, status: order.status } },
      h("a", { href: `#order-${order.order_id}` },
        h("span", { class: "order-line", text: line(order) }),
        h("span", { class: "status", dataset: { status: order.status }, text: t(`order.${order.status}`) }),
        order.shipment && h("span", { class: "tracking", text: parcelText(order) })))));
  show($("#empty"), Boolean(me) && !list.length);
}

// What the after-sales side says now: the open request, or the shop's last answer to one.
function afterSale(order, events) {
  const last = events.filter((e) => ["request_return", "accept_return", "refuse_return"].includes(e.action)).pop();
  if (!last) return "";
  if (last.action === "request_return") return t("orders.return_open", { reason: last.reason });
  if (last.action === "accept_return") {
    return t("orders.return_accepted", { amount: money(last.details.amount_minor ?? order.amount_minor, order.currency) });
  }
  return t("orders.return_refused", { reason: last.reason });
}

function renderDetail() {
  const order = orders.get(openId);
  show($("#list-view"), !order);
  show($("#detail-view"), Boolean(order));
  if (!order) return;
  const events = histories.get(openId) || [];
  $("#detail-view").dataset.status = order.status;
  $("#detail-title").textContent = t("orders.order_title", { id: order.order_id });
  $("#detail-status").textContent = t(`order.${order.status}`);
  $("#detail-summary").textContent = `${line(order)} · ${t("orders.placed", { time: dateTime(order.created_at) })}`;
  show($("#parcel"), Boolean(order.shipment));
  if (order.shipment) {
    $("#parcel-carrier").textContent = order.shipment.carrier;
    $("#parcel-tracking").textContent = order.shipment.tracking_number;
    const delivered = order.shipment.delivered_at;
    show($("#parcel-delivered"), Boolean(delivered));
    if (delivered) $("#parcel-delivered").textContent = t("orders.delivered_at", { time: dateTime(delivered) });
  }
  const words = afterSale(order, events);
  say($("#after-sale"), words, order.status === "return_requested" ? "info" : "ok");
  show($("#cancel-order"), CANCELLABLE.has(order.status));
  show($("#return-form"), RETURNABLE.has(order.status));
  $("#history").replaceChildren(...events.map((event) =>
    h("li", { dataset: { action: event.action } },
      h("span", { text: t(`orders.event.${event.action}`) }), " ",
      h("time", { datetime: event.at, class: "muted", text: dateTime(event.at) }),
      event.reason && h("q", { text: event.reason }))));
}

function render() {
  renderList();
  renderDetail();
}

async function open(orderId) {
  openId = orderId;
  render();
  if (orderId === null) return;
  try {
    const { order } = await api(`/api/orders/${orderId}`, { token: me.token });
    histories.set(orderId, order.events);
    orders.set(orderId, order);
    render();
    $("#detail-title").focus();
  } catch (error) {
    say($("#detail-result"), errorText(error), "error");
  }
}

function route() {
  const match = /^#order-(\d+)$/.exec(location.hash);
  open(match ? Number(match[1]) : null);
}

// Events after the last one seen: the orders as they are now, and their histories extended.
async function poll() {
  if (document.hidden || after === null) return;
  try {
    const changes = await api(`/api/orders/changes?after=${after}`, { token: me.token });
    for (const order of changes.orders) orders.set(order.order_id, { ...orders.get(order.order_id), ...order });
    for (const event of changes.events) {
      const events = histories.get(event.order_id);
      if (events && !events.some((e) => e.event_id === event.event_id)) events.push(event);
    }
    after = changes.last_event_id;
    say($("#connection"), "");
    if (changes.events.length) render();
  } catch (error) {
    say($("#connection"), errorText(error), "error");
  }
}

async function act(path, body, form) {
  const result = $("#detail-result");
  try {
    const answer = await busy(form, () => api(`/api/orders/${openId}/${path}`, { method: "POST", token: me.token, body }));
    orders.set(answer.order.order_id, answer.order);
    say(result, t("orders.now", { status: t(`order.${answer.order.status}`) }), "ok");
    await poll();
    render();
    return true;
  } catch (error) {
    say(result, errorText(error), "error");
    return false;
  }
}

$("#cancel-order").addEventListener("click", () => {
  const order = orders.get(openId);
  const question = order.status === "paid"
    ? t("orders.confirm_cancel_paid", { amount: money(order.amount_minor, order.currency) })
    : t("orders.confirm_cancel");
  if (confirm(question)) act("cancel", {}, $("#detail-view"));
});

$("#return-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (await act("return", { reason: form.elements.reason.value }, form)) form.reset();
});

$("#to-list").addEventListener("click", () => {
  location.hash = "";
});

async function main() {
  me = loadSession(SCOPE);
  if (!me) {
    show($("#signed-out"), true);
    return;
  }
  // the point to ask from is read before the list, so no change falls between the two
  after = (await api("/api/orders/changes", { token: me.token })).last_event_id;
  for (const order of (await api("/api/orders", { token: me.token })).orders) orders.set(order.order_id, order);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", poll);
  setInterval(poll, POLL_MS);
  onLanguage(render);
  route();
}

main().catch((error) => say($("#connection"), errorText(error), "error"));
