// The anchor's page, phone first: camera and microphone, Go live over WHIP with automatic
// re-publishing when the uplink drops, the room's chat and viewers, product cards, flash sales,
// prize draws, a live sales ticker, and the WHIP URL and key for OBS or an encoder app.

import { api } from "./api.js";
import { ChatView, chatEvent, chatForm } from "./chat.js";
import { prizeText, showWinners } from "./draws.js";
import { countdown, elapsed, everySecond, money } from "./format.js";
import { RoomSocket } from "./room.js";
import { saleForm } from "./saleform.js";
import { Shop } from "./shop.js";
import { staffSession, signOutButton } from "./signin.js";
import { $, busy, copyText, h, roomId, say, show, throttled } from "./ui.js";
import { publish } from "./whip.js";

const ROOM = roomId();
const WHIP_URL = new URL(`/api/rooms/${ROOM}/whip`, location.href).toString();
const KEY_STORAGE = `livecommerce.stream-key.${ROOM}`;
const REPUBLISH_MS = [1000, 2000, 4000, 8000];

const shop = new Shop();
const chat = new ChatView($("#chat-list"));
let session = null;
let room = null;
let products = [];

// ---- who is streaming: staff sign-in, or a stream key alone --------------------------------

function keyOnly() {
  const form = $("#key-form");
  return new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      localStorage.setItem(KEY_STORAGE, form.elements.key.value.trim());
      show($("#signin"), false);
      resolve(null);
    });
  });
}

async function streamKey() {
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) return saved;
  return newStreamKey();
}

async function newStreamKey() {
  if (!session) throw new Error("Paste a stream key or sign in to create one.");
  const created = await api(`/api/rooms/${ROOM}/stream-keys`, { method: "POST", token: session.token, body: { label: "studio" } });
  localStorage.setItem(KEY_STORAGE, created.stream_key);
  $("#stream-key").value = created.stream_key;
  return created.stream_key;
}

// ---- camera, microphone, preview --------------------------------------------------------------

const preview = $("#preview");
const stageStatus = $("#stage-status");
let media = null;

async function openCamera() {
  const facingMode = $("#camera").value;
  const micId = $("#microphone").value;
  const next = await navigator.mediaDevices.getUserMedia({
    video: { facingMode, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: micId ? { deviceId: { exact: micId } } : true,
  });
  const previous = media;
  media = next;
  preview.srcObject = media;
  stageStatus.textContent = "";
  if (broadcast.whip) await swapTracks(broadcast.whip.pc, media);
  if (previous) previous.getTracks().forEach((t) => t.stop());
  await listMicrophones();
}

async function listMicrophones() {
  const select = $("#microphone");
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "", text: "Default" }),
    ...devices.filter((d) => d.deviceId && d.deviceId !== "default")
      .map((d, i) => h("option", { value: d.deviceId, text: d.label || `Microphone ${i + 1}` })));
  select.value = chosen;
}

// Switch camera or microphone while live without a new WHIP session.
async function swapTracks(pc, stream) {
  for (const sender of pc.getSenders()) {
    const track = stream.getTracks().find((t) => sender.track && t.kind === sender.track.kind);
    if (track) await sender.replaceTrack(track);
  }
}

async function cameraChanged() {
  try {
    await openCamera();
  } catch (error) {
    stageStatus.textContent = `Camera or microphone unavailable: ${error.message}`;
  }
}

// ---- going live over WHIP --------------------------------------------------------------------

const broadcast = { wanted: false, whip: null, attempt: 0, since: null };

function uplink(text, tone = "info") {
  say($("#uplink"), text, tone);
}

async function goLive() {
  broadcast.wanted = true;
  broadcast.attempt = 0;
  renderLive();
  await startPublishing();
}

async function startPublishing() {
  if (!broadcast.wanted || broadcast.whip) return;
  try {
    if (!media) await openCamera();
    const key = await streamKey();
    uplink(broadcast.attempt ? "Reconnecting the stream…" : "Going live…");
    const whip = await publish(WHIP_URL, media, key);
    broadcast.whip = whip;
    whip.pc.addEventListener("connectionstatechange", () => uplinkChanged(whip));
    uplinkChanged(whip);
  } catch (error) {
    if (error.code === "invalid_stream_key") {
      localStorage.removeItem(KEY_STORAGE);
      if (!session) {
        broadcast.wanted = false;
        uplink("That stream key is not valid for this room.", "error");
        renderLive();
        return;
      }
    }
    if (error.code === "already_live") uplink("Another encoder is live in this room right now.", "error");
    else uplink(`Could not go live: ${error.message}. Trying again…`, "error");
    retryPublishing();
  }
}

function uplinkChanged(whip) {
  if (broadcast.whip !== whip) return;
  const state = whip.pc.connectionState;
  if (state === "connected") {
    broadcast.attempt = 0;
    broadcast.since = broadcast.since || Date.now();
    uplink("");
  } else if (state === "disconnected") {
    uplink("The uplink is unstable; holding the stream…");
  } else if (state === "failed" || state === "closed") {
    broadcast.whip = null;
    whip.abandon();
    uplink("The uplink dropped. Reconnecting…", "error");
    retryPublishing();
  }
  renderLive();
}

function retryPublishing() {
  if (!broadcast.wanted) return;
  const delay = REPUBLISH_MS[Math.min(broadcast.attempt, REPUBLISH_MS.length - 1)];
  broadcast.attempt += 1;
  setTimeout(startPublishing, delay);
}

async function endLive() {
  broadcast.wanted = false;
  const whip = broadcast.whip;
  broadcast.whip = null;
  broadcast.since = null;
  if (whip) await whip.stop();
  uplink("");
  renderLive();
}

function renderLive() {
  const onAir = Boolean(broadcast.whip && broadcast.whip.pc.connectionState === "connected") || shop.live;
  const badge = $("#live-badge");
  const reconnecting = broadcast.wanted && !onAir;
  badge.dataset.state = onAir ? "live" : reconnecting ? "reconnecting" : "off";
  badge.textContent = onAir ? "LIVE" : reconnecting ? "CONNECTING" : "OFF AIR";
  show($("#go-live"), !broadcast.wanted);
  show($("#end-live"), broadcast.wanted);
  show($("#elapsed"), onAir && broadcast.since !== null);
  if (broadcast.since !== null) $("#elapsed").textContent = elapsed(broadcast.since);
}

window.addEventListener("pagehide", () => {
  if (broadcast.whip) broadcast.whip.stop();
});

// ---- products, cards and flash sales ----------------------------------------------------------

const productResult = $("#product-result");

async function loadProducts() {
  const answer = await api("/api/inventory", { token: session.token });
  const byProduct = new Map();
  for (const sku of answer.skus) {
    if (!byProduct.has(sku.product_id)) byProduct.set(sku.product_id, { product_id: sku.product_id, name: sku.product, skus: [] });
    byProduct.get(sku.product_id).skus.push(sku);
  }
  products = [...byProduct.values()];
  renderProducts();
}

let productsShown = "";

function renderProducts() {
  const pinnedId = shop.card ? shop.card.product_id : null;
  // rebuild the buttons only when something they show changed, so keyboard focus stays put
  const shown = `${pinnedId}:${products.map((p) => p.product_id).join()}`;
  if (shown === productsShown) {
    renderSale();
    return;
  }
  productsShown = shown;
  $("#pinned-line").textContent = shop.card ? `Pinned: ${shop.card.name}` : "No product pinned.";
  $("#products").replaceChildren(...products.map((p) => {
    const pinned = p.product_id === pinnedId;
    return h("li", { dataset: { productId: p.product_id, pinned: String(pinned) } },
      h("span", { class: "product-name", text: p.name }),
      h("span", { class: "actions" },
        pinned
          ? h("button", { type: "button", onclick: () => command("card.unpin", {}), text: "Unpin" })
          : h("button", { type: "button", onclick: () => command("card.pin", { product_id: p.product_id }), text: "Pin" }),
        h("button", { type: "button", onclick: () => chooseSale(p), text: "Sale…" })));
  }));
  renderSale();
}

async function command(type, data) {
  say(productResult, "");
  try {
    await room.send(type, data);
  } catch (error) {
    say(productResult, error.message, "error");
  }
}

function chooseSale(product) {
  $("#sale-slot").replaceChildren(saleForm({
    roomId: ROOM, token: session.token, skus: product.skus, result: productResult,
    onStarted: (view, sku) => {
      $("#sale-slot").replaceChildren();
      if (!shop.card || shop.card.product_id !== sku.product_id) command("card.pin", { product_id: sku.product_id });
    },
    onCancel: () => $("#sale-slot").replaceChildren(),
  }));
}

function runningSale() {
  for (const sale of shop.sales.values()) return sale;
  return null;
}

function renderSale() {
  const sale = runningSale();
  show($("#sale-running"), Boolean(sale));
  if (!sale) return;
  $("#sale-left").textContent = sale.state === "sold_out" ? "sold out" : String(sale.available);
  $("#sale-countdown").textContent = sale.state === "scheduled" ? `(starts in ${countdown(sale.startsAtMs)})` : countdown(sale.endsAtMs);
}

$("#sale-end").addEventListener("click", async () => {
  const sale = runningSale();
  if (!sale) return;
  try {
    await api(`/api/sales/${sale.sale_id}/end`, { method: "POST", token: session.token, body: {} });
    say(productResult, "The sale has ended.", "ok");
  } catch (error) {
    say(productResult, error.message, "error");
  }
});

// ---- prize draws -----------------------------------------------------------------------------

let draw = null;

function drawChanged(view) {
  draw = view ? { ...view, closesAtMs: Date.now() + view.remaining_seconds * 1000 } : null;
  renderDraw();
}

function renderDraw() {
  const open = draw && draw.state === "open";
  show($("#draw-form"), !open);
  show($("#draw-running"), Boolean(open));
  if (!draw) return;
  $("#draw-prize").textContent = prizeText(draw);
  $("#draw-countdown").textContent = countdown(draw.closesAtMs);
  showWinners($("#draw-winners"), draw);
  if (draw.state === "closed") {
    const names = draw.winners.map((w) => w.display_name).join(", ");
    say($("#draw-result"), names ? `Winners of ${prizeText(draw)}: ${names}` : "The draw closed with no entrants.", "ok");
  }
}

$("#draw-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const rule = form.elements.rule.value;
  const spec = {
    prize_text: form.elements.prize.value,
    winners_count: Number(form.elements.winners.value),
    rule,
    duration_seconds: Number(form.elements.seconds.value),
  };
  if (rule === "keyword") spec.keyword = form.elements.keyword.value;
  try {
    await busy(form, () => room.send("draw.start", spec));
    say($("#draw-result"), "");
  } catch (error) {
    say($("#draw-result"), error.message, "error");
  }
});

// ---- the room --------------------------------------------------------------------------------

// the sales ticker: this room's figures, fetched again as orders come in
const refreshTicker = throttled(async () => {
  try {
    const data = await api(`/api/rooms/${ROOM}/dashboard`, { token: session.token });
    $("#ticker-orders").textContent = data.totals.orders;
    $("#ticker-units").textContent = data.totals.units;
    $("#ticker-revenue").textContent = money(data.totals.gmv_minor, data.currency);
  } catch (error) {
    say(productResult, error.message, "error");
  }
}, 1500);

function onSnapshot(snapshot) {
  shop.loadSnapshot(snapshot);
  chat.load(snapshot.chat || []);
  drawChanged(snapshot.draw);
  renderAll();
  refreshTicker();
}

function onEvent(type, data, message) {
  if (chatEvent(chat, type, data)) return;
  if (type === "stream.live" && !broadcast.since) broadcast.since = message.ts * 1000;
  if (shop.apply(type, data)) renderAll();
  else if (type === "draw.started" || type === "draw.closed") drawChanged(data);
  else if (type === "order.feed") refreshTicker();
}

function renderAll() {
  $("#viewers").textContent = shop.viewers;
  renderLive();
  renderProducts();
}

function connectionStatus(status, reason) {
  if (status === "connected") say($("#signin-result"), "");
  const line = $("#stage-status");
  if (status === "closed") line.textContent = reason || "Disconnected from the room.";
}

function setupEncoderPanel() {
  $("#whip-url").value = WHIP_URL;
  $("#stream-key").value = localStorage.getItem(KEY_STORAGE) || "";
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copyText(button, $(`#${button.dataset.copy}`).value));
  }
  $("#new-key").addEventListener("click", async () => {
    try {
      await newStreamKey();
    } catch (error) {
      uplink(error.message, "error");
    }
  });
}

async function main() {
  session = await Promise.race([staffSession(), keyOnly()]);
  show($("#studio"), true);
  show($("#staff-tools"), Boolean(session));
  show($("#new-key"), Boolean(session));
  $("#me-name").textContent = session ? session.user.display_name : "stream key only";
  signOutButton($("#sign-out"));
  setupEncoderPanel();
  $("#camera").addEventListener("change", cameraChanged);
  $("#microphone").addEventListener("change", cameraChanged);
  $("#go-live").addEventListener("click", goLive);
  $("#end-live").addEventListener("click", endLive);
  everySecond(() => {
    renderLive();
    renderSale();
    if (draw && draw.state === "open") renderDraw();
  });
  await cameraChanged();
  if (!session) return;
  chatForm($("#chat-form"), $("#chat-status"), { send: (type, data) => room.send(type, data) });
  room = new RoomSocket({ roomId: ROOM, token: session.token, onEvent, onSnapshot, onStatus: connectionStatus }).start();
  await loadProducts();
}

main().catch((error) => uplink(error.message, "error"));
