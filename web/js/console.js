// The operator's console: inventory per SKU with restock and reprice, open sales, the orders
// (live feed, fulfilment and after-sales: console-orders.js), chat moderation, and the room's
// sales dashboard with CSV export.

import { api } from "./api.js";
import { ChatView, chatEvent } from "./chat.js";
import { OrdersDesk } from "./console-orders.js";
import { drawChart } from "./chart.js";
import { countdown, dateTime, everySecond, money, number, parseMoney, timeOfDay } from "./format.js";
import { errorText, language, onLanguage, t } from "./i18n.js";
import { RoomSocket } from "./room.js";
import { saleForm } from "./saleform.js";
import { Shop, bagButton } from "./shop.js";
import { staffSession, signOutButton } from "./signin.js";
import { $, busy, h, roomId, say, show, throttled } from "./ui.js";

const ROOM = roomId();
let session = null;
let room = null;
const shop = new Shop();

async function call(path, body, result) {
  try {
    return await api(path, { method: body === undefined ? "GET" : "POST", token: session.token, body });
  } catch (error) {
    say(result, errorText(error), "error");
    throw error;
  }
}

// ---- inventory and sales ---------------------------------------------------------------------

const inventoryResult = $("#inventory-result");
let skus = [];

const refreshInventory = throttled(async () => {
  skus = (await call("/api/inventory", undefined, inventoryResult)).skus;
  renderInventory();
}, 1000);

// Rows are kept and only their figures change, so what an operator is typing survives updates.
const rows = new Map();

function renderInventory() {
  const body = $("#inventory tbody");
  for (const sku of skus) {
    let row = rows.get(sku.sku_id);
    if (!row) {
      row = inventoryRow(sku);
      rows.set(sku.sku_id, row);
      body.append(row.tr);
    }
    row.price.textContent = money(sku.price_minor, sku.currency);
    row.onHand.textContent = number(sku.on_hand);
    row.reserved.textContent = number(sku.reserved);
    row.available.textContent = number(sku.available);
    const sale = shop.saleFor(sku.sku_id);
    const pinned = Boolean(shop.card && shop.card.product_id === sku.product_id);
    const inBag = shop.bag.some((p) => p.product_id === sku.product_id);
    const state = `${language()}:${sale ? sale.sale_id : ""}:${pinned}:${inBag}`;
    if (row.state !== state) {
      row.state = state;
      row.reprice.replaceChildren(repriceForm(sku, sale));
      row.actions.replaceChildren(...cardButtons(sku, sale, pinned), bagButton(sku, inBag, pinned,
        (type, data) => roomCommand(type, data, inventoryResult)));
    }
  }
  renderSales();
}

function inventoryRow(sku) {
  const cell = (props = {}) => h("td", props);
  const row = { price: h("span"), onHand: cell(), reserved: cell(), available: cell({ class: "available" }),
    reprice: cell(), actions: cell({ class: "actions" }), state: null };
  const restock = h("form", { "aria-label": t("console.restock_named", { sku: sku.code }), onsubmit: (e) => restockSku(e, sku) },
    h("input", { name: "units", type: "number", min: "1", required: true, "aria-label": t("console.units_to_add", { sku: sku.code }) }),
    h("button", { type: "submit", text: t("console.add"), "aria-label": t("console.add_named", { sku: sku.code }) }));
  const price = h("form", { "aria-label": t("console.regular_price_named", { sku: sku.code }), onsubmit: (e) => repriceSku(e, sku) },
    h("input", { name: "price", inputmode: "decimal", required: true, size: 6,
      "aria-label": t("console.new_regular_price", { sku: sku.code }) }),
    h("button", { type: "submit", text: t("console.set"), "aria-label": t("console.set_price_named", { sku: sku.code }) }));
  row.tr = h("tr", { dataset: { skuId: sku.sku_id } },
    h("td", { text: sku.code }), h("td", {}, sku.product, h("span", { class: "variant", text: sku.name })),
    h("td", {}, row.price, price),
    row.onHand, row.reserved, row.available, h("td", {}, restock), row.reprice, row.actions);
  return row;
}

function repriceForm(sku, sale) {
  if (!sale) return h("span", { class: "muted", text: t("console.no_sale") });
  return h("form", { "aria-label": t("console.sale_price_named", { sku: sku.code }), onsubmit: (e) => repriceSale(e, sku) },
    h("input", { name: "price", inputmode: "decimal", required: true, "aria-label": t("console.new_sale_price", { sku: sku.code }),
      placeholder: money(sale.sale_price_minor, sale.currency) }),
    h("button", { type: "submit", text: t("console.set"), "aria-label": t("console.set_sale_price_named", { sku: sku.code }) }));
}

function cardButtons(sku, sale, pinned) {
  const pin = pinned
    ? h("button", { type: "button", text: t("studio.unpin"), "aria-label": t("studio.unpin_named", { product: sku.product }),
      onclick: () => roomCommand("card.unpin", {}, inventoryResult) })
    : h("button", { type: "button", text: t("studio.pin"), "aria-label": t("studio.pin_named", { product: sku.product }),
      onclick: () => roomCommand("card.pin", { product_id: sku.product_id }, inventoryResult) });
  const startSale = sale ? null : h("button", { type: "button", text: t("studio.sale"), "aria-label": t("studio.sale_named", { product: sku.code }),
    onclick: () => openSaleForm(sku) });
  return [pin, startSale].filter(Boolean);
}

function renderSales() {
  const sales = [...shop.sales.values()];
  $("#sales").replaceChildren(...(sales.length ? [h("h3", { text: t("console.flash_sales") })] : []), ...sales.map((sale) => {
    const sku = skus.find((s) => s.sku_id === sale.sku_id);
    const code = sku ? sku.code : `SKU ${sale.sku_id}`;
    const when = sale.state === "scheduled" ? t("watch.starts_in", { time: countdown(sale.startsAtMs) }) : t("watch.ends_in", { time: countdown(sale.endsAtMs) });
    return h("p", { class: "sale-line", dataset: { saleId: sale.sale_id } },
      h("strong", { text: code }),
      ` · ${money(sale.sale_price_minor, sale.currency)} · `,
      h("span", { class: "sale-available", text: t("console.of_left", { available: number(sale.available), allocated: number(sale.allocated) }) }),
      ` · ${t(`sale.state.${sale.state}`)} · ${when} `,
      h("button", { type: "button", class: "danger", text: t("studio.end_sale"), "aria-label": t("console.end_sale_named", { sku: code }),
        onclick: () => call(`/api/sales/${sale.sale_id}/end`, {}, inventoryResult).catch(() => {}) }));
  }));
}

function openSaleForm(sku) {
  const slot = $("#sale-slot");
  slot.replaceChildren(saleForm({
    roomId: ROOM, token: session.token, skus: [sku], result: inventoryResult,
    onStarted: () => slot.replaceChildren(),
    onCancel: () => slot.replaceChildren(),
  }));
}

// Units added to a SKU during its sale go straight into the sale; otherwise into the warehouse.
async function restockSku(event, sku) {
  event.preventDefault();
  const form = event.target;
  const units = Number(form.elements.units.value);
  const sale = shop.saleFor(sku.sku_id);
  try {
    await busy(form, () => sale
      ? call(`/api/sales/${sale.sale_id}/restock`, { units, receive: true }, inventoryResult)
      : call(`/api/skus/${sku.sku_id}/stock`, { delta: units }, inventoryResult));
    say(inventoryResult, t(sale ? "console.added_to_sale" : "console.added", { count: number(units), sku: sku.code }), "ok");
    form.reset();
    refreshInventory();
  } catch {
    // said by call()
  }
}

async function repriceSku(event, sku) {
  event.preventDefault();
  const form = event.target;
  const price = parseMoney(form.elements.price.value, sku.currency);
  if (price === null) {
    say(inventoryResult, t("sale.price_help"), "error");
    return;
  }
  try {
    await busy(form, () => call(`/api/skus/${sku.sku_id}/price`, { price_minor: price }, inventoryResult));
    say(inventoryResult, t("console.now_costs", { sku: sku.code, price: money(price, sku.currency) }), "ok");
    form.reset();
    refreshInventory();
  } catch {
    // said by call()
  }
}

async function repriceSale(event, sku) {
  event.preventDefault();
  const form = event.target;
  const sale = shop.saleFor(sku.sku_id);
  if (!sale) {
    say(inventoryResult, t("error.ended"), "error");
    return;
  }
  const price = parseMoney(form.elements.price.value, sale.currency);
  if (price === null) {
    say(inventoryResult, t("sale.price_help"), "error");
    return;
  }
  try {
    await busy(form, () => call(`/api/sales/${sale.sale_id}/price`, { sale_price_minor: price }, inventoryResult));
    say(inventoryResult, t("console.sale_price_set", { price: money(price, sale.currency) }), "ok");
  } catch {
    // said by call()
  }
}

// ---- orders ----------------------------------------------------------------------------------

const ordersResult = $("#orders-result");
const desk = new OrdersDesk({
  roomId: ROOM,
  call,
  readsAddresses: () => session.user.role === "operator",
});

// ---- moderation ------------------------------------------------------------------------------

const moderationResult = $("#moderation-result");

async function roomCommand(type, data, result) {
  try {
    const answer = await room.send(type, data);
    say(result, "");
    return answer;
  } catch (error) {
    say(result, errorText(error), "error");
    return null;
  }
}

// Mute and Ban go only on messages of viewers and guests: a message with a role badge is
// staff's, and staff cannot be muted or banned.
function mayBeMuted(message) {
  return !message.badge && message.user_id !== session.user.id;
}

function moderationTools(message) {
  if (!may.moderate) return null;
  const name = message.display_name;
  const remove = h("button", { type: "button", text: t("console.delete"), "aria-label": t("console.delete_named", { name }),
    onclick: () => roomCommand("chat.delete", { message_id: message.id }, moderationResult) });
  if (!mayBeMuted(message)) return [remove];
  return [
    remove,
    h("button", { type: "button", text: t("console.mute"), "aria-label": t("console.mute_named", { name }),
      onclick: async () => {
        if (await roomCommand("user.mute", { user_id: message.user_id, seconds: 600 }, moderationResult)) {
          say(moderationResult, t("console.muted", { name }), "ok");
        }
      } }),
    h("button", { type: "button", text: t("console.ban"), "aria-label": t("console.ban_named", { name }),
      onclick: async () => {
        if (!confirm(t("console.confirm_ban", { name }))) return;
        if (await roomCommand("user.ban", { user_id: message.user_id }, moderationResult)) {
          say(moderationResult, t("console.banned", { name }), "ok");
        }
      } }),
  ];
}


const chat = new ChatView($("#chat-list"), { tools: moderationTools });

$("#slow-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const seconds = Number($("#slow-seconds").value);
  const answer = await roomCommand("room.slow_mode", { seconds }, moderationResult);
  if (answer) say(moderationResult, seconds ? t("console.slow_on", { seconds: number(seconds) }) : t("console.slow_off"), "ok");
});

$("#words-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const words = $("#blocked-words").value.split(",").map((w) => w.trim()).filter(Boolean);
  const answer = await roomCommand("room.blocked_words", { words }, moderationResult);
  if (answer) {
    $("#blocked-words").value = answer.blocked_words.join(", ");
    say(moderationResult, t(answer.blocked_words.length ? "console.words_saved" : "console.no_words"), "ok");
  }
});

// ---- dashboard -------------------------------------------------------------------------------

const dashboardUrl = `/api/rooms/${ROOM}/dashboard`;
const streamPicker = $("#stream-picker");
let streamChosen = false; // until the operator picks one, the newest stream is shown

const percent = (ratio) => (ratio === null ? "—" : `${(ratio * 100).toFixed(1)}%`);

function streamLabel(stream) {
  const start = dateTime(stream.started_at);
  return stream.ended_at ? `${start} – ${timeOfDay(stream.ended_at)}` : t("console.live_now", { start });
}

const refreshStreams = throttled(async () => {
  const { streams } = await call(`/api/rooms/${ROOM}/streams`, undefined, ordersResult);
  const chosen = streamChosen ? streamPicker.value : String(streams.length ? streams[0].id : "");
  streamPicker.replaceChildren(
    ...streams.map((s) => h("option", { value: s.id, text: streamLabel(s) })),
    h("option", { value: "", text: t("console.last_24h") }),
  );
  streamPicker.value = chosen;
  refreshDashboard();
}, 2000);

function dashboardQuery(extra = {}) {
  const query = new URLSearchParams(extra);
  if (streamPicker.value) query.set("stream", streamPicker.value);
  const text = query.toString();
  return text ? `${dashboardUrl}?${text}` : dashboardUrl;
}

const refreshDashboard = throttled(async () => {
  const data = await call(dashboardQuery(), undefined, ordersResult);
  $("#total-revenue").textContent = money(data.totals.gmv_minor, data.currency);
  $("#total-orders").textContent = number(data.totals.orders);
  $("#total-units").textContent = number(data.totals.units);
  $("#peak-viewers").textContent = number(data.peak_viewers);
  drawChart($("#chart"), data);
  $("#conversion tbody").replaceChildren(...data.products.map((p) => h("tr", {},
    h("td", { text: p.name }), h("td", { text: p.tappers }), h("td", { text: p.buyers }),
    h("td", { text: percent(p.tap_conversion) }), h("td", { text: percent(p.viewer_conversion) }),
    h("td", { text: p.paid_orders }), h("td", { text: money(p.gmv_minor, data.currency) }))));
}, 2000);

streamPicker.addEventListener("change", () => {
  streamChosen = true;
  refreshDashboard();
});

$("#csv-link").addEventListener("click", async (event) => {
  event.preventDefault();
  const response = await fetch(dashboardQuery({ format: "csv" }), { headers: { Authorization: `Bearer ${session.token}` } });
  if (!response.ok) {
    say(ordersResult, t("console.export_failed"), "error");
    return;
  }
  const name = streamPicker.value ? `room-${ROOM}-stream-${streamPicker.value}-sales.csv` : `room-${ROOM}-sales.csv`;
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: name });
  link.click();
  URL.revokeObjectURL(link.href);
});

// Operators export the shop's orders of this room with buyers' addresses; each export is recorded.
$("#export-addresses").addEventListener("click", async () => {
  const url = `/api/merchants/${session.user.merchant_id}/orders.csv?room_id=${ROOM}`;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${session.token}` } });
  if (!response.ok) {
    say(ordersResult, t("console.export_failed"), "error");
    return;
  }
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: `room-${ROOM}-orders-with-addresses.csv` });
  link.click();
  URL.revokeObjectURL(link.href);
});

// ---- the room --------------------------------------------------------------------------------

// What this account may do is read from the snapshot: the room's order feed comes only to those
// who may see sales, its blocked words only to those who may moderate.
const may = { sell: false, moderate: false };

function onSnapshot(snapshot) {
  may.sell = snapshot.order_feed !== null && snapshot.order_feed !== undefined;
  may.moderate = Array.isArray(snapshot.room.blocked_words);
  for (const panel of document.querySelectorAll(".inventory, .orders, .dashboard")) show(panel, may.sell);
  show($("#addresses"), session.user.role === "operator");
  for (const form of document.querySelectorAll("#slow-form, #words-form")) show(form, may.moderate);
  shop.loadSnapshot(snapshot);
  chat.load(snapshot.chat || []);
  desk.reset(snapshot.order_feed || []);
  $("#slow-seconds").value = snapshot.room.slow_mode_seconds;
  $("#blocked-words").value = (snapshot.room.blocked_words || []).join(", ");
  renderRoom();
  if (may.sell) {
    refreshInventory();
    refreshStreams();
  }
}

// ---- recordings ------------------------------------------------------------------------------

const recordingsResult = $("#recordings-result");

function megabytes(bytes) {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

function minutes(seconds) {
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function recordingState(recording) {
  return t(`console.recording_state_${recording.state}`, { error: recording.error || "" });
}

async function deleteRecording(recording) {
  if (!confirm(t("console.recording_confirm"))) return;
  try {
    await api(`/api/recordings/${recording.stream_session_id}`, { method: "DELETE", token: session.token });
    refreshRecordings();
  } catch (error) {
    say(recordingsResult, errorText(error), "error");
  }
}

// the roles that manage recordings (a moderator's console has no recordings panel)
const RECORDING_ROLES = ["anchor", "operator", "admin"];

const refreshRecordings = throttled(async () => {
  if (!RECORDING_ROLES.includes(session.user.role)) return;
  let recordings;
  try {
    ({ recordings } = await api(`/api/rooms/${ROOM}/recordings`, { token: session.token }));
  } catch (error) {
    say(recordingsResult, errorText(error), "error");
    return;
  }
  show($(".recordings"), true);
  $("#recordings tbody").replaceChildren(
    ...recordings.map((recording) =>
      h("tr", { dataset: { sessionId: recording.stream_session_id, state: recording.state } },
        h("td", { text: dateTime(recording.started_at) }),
        h("td", { text: minutes(recording.duration_seconds) }),
        h("td", { text: megabytes(recording.size_bytes) }),
        h("td", { class: recording.state === "failed" ? "error" : "", text: recordingState(recording) }),
        h("td", {}, recording.playlist_url ? h("a", { href: recording.replay_url, text: t("console.recording_replay") }) : ""),
        h("td", {}, recording.state === "recording" ? "" : h("button", { type: "button", class: "danger", text: t("console.recording_delete"), onclick: () => deleteRecording(recording) })),
      ),
    ),
  );
  if (!recordings.length) say(recordingsResult, t("console.recording_none"));
  else say(recordingsResult, "");
}, 2000);

function onEvent(type, data, message) {
  if (chatEvent(chat, type, data)) return;
  if (shop.apply(type, data)) {
    renderRoom();
    if (!may.sell) return;
    if (type === "presence") refreshDashboard();
    else if (type.startsWith("stream.")) {
      refreshStreams();
      refreshRecordings();
    }
    else refreshInventory();
  } else if (type === "order.feed") {
    desk.seen(data, message.ts);
    refreshInventory();
    refreshDashboard();
  } else if (type === "room.settings") {
    $("#slow-seconds").value = data.slow_mode_seconds;
  }
}

function renderRoom() {
  $("#viewers").textContent = t("viewers", { count: shop.viewers, number: number(shop.viewers) });
  const badge = $("#live-badge");
  badge.dataset.state = shop.live ? "live" : "off";
  badge.textContent = t(shop.live ? "badge.live" : "badge.off_air");
  renderInventory();
}

function connectionStatus(status, reason) {
  const line = $("#connection");
  if (status === "connected") say(line, "");
  else if (status === "closed") say(line, reason || t("studio.disconnected"), "error");
  else say(line, t("studio.room_reconnecting"), "info");
}

async function main() {
  session = await staffSession();
  show($("#console"), true);
  show($("#me"), true);
  $("#me-name").textContent = session.user.display_name;
  signOutButton($("#sign-out"));
  onLanguage(() => {
    // the rows' forms carry words too: build them again
    rows.clear();
    $("#inventory tbody").replaceChildren();
    renderRoom();
    desk.render();
    chat.redraw();
    refreshStreams();
    refreshRecordings();
  });
  everySecond(renderSales);
  refreshRecordings();
  room = new RoomSocket({ roomId: ROOM, token: session.token, onEvent, onSnapshot, onStatus: connectionStatus }).start();
}

main().catch((error) => say($("#connection"), errorText(error), "error"));
