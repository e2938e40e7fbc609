// The anchor's page, phone first: the camera preview stays full screen with the chat, the sales
// ticker and the pinned card over it; Go live over WHIP with automatic re-publishing when the
// uplink drops; products, flash sales, prize draws and settings open as sheets over the preview.

import { api } from "./api.js";
import { ChatView, chatEvent, chatForm } from "./chat.js";
import { entrantsText, prizeText, ruleText, showWinners, withEntrants } from "./draws.js";
import { countdown, elapsed, everySecond, money, number } from "./format.js";
import { errorText, language, onLanguage, t } from "./i18n.js";
import { RoomSocket } from "./room.js";
import { saleForm } from "./saleform.js";
import { Shop, bagButton } from "./shop.js";
import { staffSession, signOutButton } from "./signin.js";
import { $, busy, copyText, h, roomId, say, setupSheets, show, throttled } from "./ui.js";
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
  if (!session) throw new Error(t("studio.need_key"));
  const created = await api(`/api/rooms/${ROOM}/stream-keys`, { method: "POST", token: session.token, body: { label: "studio" } });
  localStorage.setItem(KEY_STORAGE, created.stream_key);
  $("#stream-key").value = created.stream_key;
  return created.stream_key;
}

// ---- camera, microphone, preview --------------------------------------------------------------

const preview = $("#preview");
const stageStatus = $("#stage-status");
let media = null;

// The camera is asked for a picture shaped like the screen, so the stream follows how the phone
// is held: upright publishes portrait, turned sideways landscape.
const portraitScreen = matchMedia("(orientation: portrait)");

function pictureShape() {
  const [long, short] = [{ ideal: 1280 }, { ideal: 720 }];
  return portraitScreen.matches ? { width: short, height: long } : { width: long, height: short };
}

async function openCamera() {
  const facingMode = $("#camera").value;
  const micId = $("#microphone").value;
  const next = await navigator.mediaDevices.getUserMedia({
    video: { facingMode, ...pictureShape() },
    audio: micId ? { deviceId: { exact: micId } } : true,
  });
  const previous = media;
  media = next;
  preview.srcObject = media;
  for (const track of media.getAudioTracks()) track.enabled = !microphoneMuted;
  stageStatus.textContent = "";
  if (broadcast.whip) await swapTracks(broadcast.whip.pc, media);
  if (previous) previous.getTracks().forEach((t) => t.stop());
  await listMicrophones();
}

async function listMicrophones() {
  const select = $("#microphone");
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "", text: t("studio.default_mic"), dataset: { i18n: "studio.default_mic" } }),
    ...devices.filter((d) => d.deviceId && d.deviceId !== "default")
      .map((d, i) => h("option", { value: d.deviceId, text: d.label || t("studio.mic_n", { n: i + 1 }) })));
  select.value = chosen;
}

// Switch camera or microphone while live without a new WHIP session.
async function swapTracks(pc, stream) {
  for (const sender of pc.getSenders()) {
    const track = stream.getTracks().find((t) => sender.track && t.kind === sender.track.kind);
    if (track) await sender.replaceTrack(track);
  }
}

// The phone turned: reshape the running camera track in place (the WHIP sender keeps it, so
// viewers see the new shape without a new session); a camera that cannot is opened afresh.
async function orientationChanged() {
  const track = media && media.getVideoTracks()[0];
  if (!track) return;
  try {
    await track.applyConstraints(pictureShape());
  } catch (_) {
    await cameraChanged();
  }
}

portraitScreen.addEventListener("change", orientationChanged);

async function cameraChanged() {
  try {
    await openCamera();
  } catch (error) {
    stageStatus.textContent = t("studio.camera_unavailable", { problem: error.message });
  }
}

// The preview keeps a portrait picture full screen on a portrait phone, and shows others whole.
function fitPreview() {
  const portraitVideo = preview.videoHeight > preview.videoWidth;
  preview.dataset.fit = portraitVideo && innerHeight > innerWidth ? "cover" : "contain";
}

preview.addEventListener("loadedmetadata", fitPreview);
preview.addEventListener("resize", fitPreview);
addEventListener("resize", fitPreview);

function flipCamera() {
  const camera = $("#camera");
  camera.value = camera.value === "user" ? "environment" : "user";
  cameraChanged();
}

let microphoneMuted = false;

function toggleMicrophone() {
  microphoneMuted = !microphoneMuted;
  if (media) for (const track of media.getAudioTracks()) track.enabled = !microphoneMuted;
  renderMicrophone();
}

function renderMicrophone() {
  const button = $("#mute");
  button.setAttribute("aria-pressed", String(microphoneMuted));
  button.setAttribute("aria-label", t(microphoneMuted ? "studio.unmute" : "studio.mute"));
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
    uplink(broadcast.attempt ? t("studio.reconnecting") : t("studio.going_live"));
    const whip = await publish(WHIP_URL, media, key);
    broadcast.whip = whip;
    whip.pc.addEventListener("connectionstatechange", () => uplinkChanged(whip));
    uplinkChanged(whip);
  } catch (error) {
    if (error.code === "invalid_stream_key") {
      localStorage.removeItem(KEY_STORAGE);
      if (!session) {
        broadcast.wanted = false;
        uplink(t("error.invalid_stream_key"), "error");
        renderLive();
        return;
      }
    }
    if (error.code === "already_live") uplink(t("error.already_live"), "error");
    else uplink(t("studio.could_not_go_live", { problem: errorText(error) }), "error");
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
    uplink(t("studio.unstable"));
  } else if (state === "failed" || state === "closed") {
    broadcast.whip = null;
    whip.abandon();
    uplink(t("studio.dropped"), "error");
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
  badge.dataset.state = onAir ? "live" : reconnecting ? "connecting" : "off";
  badge.textContent = t(onAir ? "badge.live" : reconnecting ? "badge.connecting" : "badge.off_air");
  show($("#go-live"), !broadcast.wanted);
  show($("#end-live"), broadcast.wanted);
  show($("#elapsed"), onAir && broadcast.since !== null);
  if (broadcast.since !== null) $("#elapsed").textContent = elapsed(broadcast.since);
}

// Ending is not undone by a slip of the thumb: it asks first.
function confirmEnd() {
  const dialog = $("#end-confirm");
  dialog.returnValue = "";
  dialog.showModal();
}

$("#end-confirm").addEventListener("close", (event) => {
  if (event.target.returnValue === "end") endLive();
});

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
  productsShown = "";
  renderProducts();
  renderPrizeChoices();
}

function renderPrizeChoices() {
  const select = $("#draw-form").elements.prize_sku;
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "", text: t("studio.draw_no_sku"), dataset: { i18n: "studio.draw_no_sku" } }),
    ...products.flatMap((p) => p.skus.map((sku) => h("option", { value: sku.sku_id,
      text: t("studio.prize_choice", { product: p.name, sku: sku.name, count: number(sku.available) }) }))));
  select.value = chosen;
}

let productsShown = "";

function renderProducts() {
  const pinnedId = shop.card ? shop.card.product_id : null;
  // rebuild the buttons only when something they show changed, so keyboard focus stays put
  const inBag = new Set(shop.bag.map((p) => p.product_id));
  const shown = `${language()}:${pinnedId}:${products.map((p) => p.product_id).join()}:${[...inBag].join()}`;
  $("#pinned-line").textContent = shop.card ? t("studio.pinned", { product: shop.card.name }) : "";
  show($("#pinned-line"), Boolean(shop.card));
  if (shown === productsShown) {
    renderSale();
    return;
  }
  productsShown = shown;
  $("#products").replaceChildren(...products.map((p) => {
    const pinned = p.product_id === pinnedId;
    const stock = p.skus.reduce((sum, sku) => sum + sku.available, 0);
    const first = p.skus[0];
    return h("li", { dataset: { productId: p.product_id, pinned: String(pinned) } },
      h("span", { class: "product-name" }, p.name,
        h("span", { class: "product-facts", text: t("studio.product_facts", { price: money(first.price_minor, first.currency), count: number(stock) }) }),
        pinned ? h("span", { class: "pinned-mark", text: t("studio.pinned_mark") }) : null),
      h("span", { class: "actions" },
        pinned
          ? h("button", { type: "button", onclick: () => command("card.unpin", {}), text: t("studio.unpin"), "aria-label": t("studio.unpin_named", { product: p.name }) })
          : h("button", { type: "button", onclick: () => command("card.pin", { product_id: p.product_id }), text: t("studio.pin"), "aria-label": t("studio.pin_named", { product: p.name }) }),
        bagButton(p, inBag.has(p.product_id), pinned, command),
        h("button", { type: "button", onclick: () => chooseSale(p), text: t("studio.sale"), "aria-label": t("studio.sale_named", { product: p.name }) })));
  }));
  renderSale();
}

async function command(type, data) {
  say(productResult, "");
  try {
    await room.send(type, data);
  } catch (error) {
    say(productResult, errorText(error), "error");
  }
}

function chooseSale(product) {
  $("#sale-slot").replaceChildren(saleForm({
    roomId: ROOM, token: session.token, skus: product.skus, result: productResult,
    onStarted: (view, sku) => {
      $("#sale-slot").replaceChildren();
      loadProducts().catch(() => {});
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
  $("#sale-left").textContent = sale.state === "sold_out" ? t("watch.sold_out") : t("watch.left", { count: number(sale.available) });
  $("#sale-countdown").textContent = sale.state === "scheduled" ? t("watch.starts_in", { time: countdown(sale.startsAtMs) }) : t("watch.ends_in", { time: countdown(sale.endsAtMs) });
  $("#sale-keep-open").checked = Boolean(sale.keep_open_after_live);
}

// Whether the running sale stays open when the live ends (otherwise ending the live ends it).
$("#sale-keep-open").addEventListener("change", async (event) => {
  const sale = runningSale();
  if (!sale) return;
  const keep = event.target.checked;
  try {
    await api(`/api/sales/${sale.sale_id}/after-live`, { method: "POST", token: session.token, body: { keep_open_after_live: keep } });
    say(productResult, t(keep ? "studio.keep_open_on" : "studio.keep_open_off"), "ok");
  } catch (error) {
    event.target.checked = !keep;
    say(productResult, errorText(error), "error");
  }
});

$("#sale-end").addEventListener("click", async () => {
  const sale = runningSale();
  if (!sale) return;
  try {
    await api(`/api/sales/${sale.sale_id}/end`, { method: "POST", token: session.token, body: {} });
    say(productResult, t("studio.sale_ended"), "ok");
  } catch (error) {
    say(productResult, errorText(error), "error");
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
  $("#draw-countdown").textContent = t("draw.closes_in", { time: countdown(draw.closesAtMs) });
  $("#draw-rule-line").textContent = ruleText(draw);
  show($("#draw-entrants"), Boolean(open && draw.rule === "keyword"));
  $("#draw-entrants").textContent = entrantsText(draw, { names: true });
  showWinners($("#draw-winners"), draw);
  if (draw.state === "closed") {
    const names = draw.winners.map((w) => w.display_name).join(", ");
    say($("#draw-result"), names
      ? t("studio.draw_winners_of", { prize: prizeText(draw), names, count: number(draw.entrant_count) })
      : t("studio.draw_no_entrants"), "ok");
  }
}

function keywordField() {
  show($("#keyword-field"), $("#draw-form").elements.rule.value === "keyword");
}

$("#draw-form").elements.rule.addEventListener("change", keywordField);

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
  if (form.elements.prize_sku.value) spec.prize_sku_id = Number(form.elements.prize_sku.value);
  if (form.elements.min_watch.value) spec.min_watch_seconds = Number(form.elements.min_watch.value) * 60;
  if (!spec.prize_text && !spec.prize_sku_id) {
    say($("#draw-result"), t("studio.draw_need_prize"), "error");
    return;
  }
  try {
    await busy(form, () => room.send("draw.start", spec));
    say($("#draw-result"), "");
  } catch (error) {
    say($("#draw-result"), errorText(error), "error");
  }
});

// ---- the room --------------------------------------------------------------------------------

// the sales ticker: this room's figures, fetched again as orders come in, and the room's likes
// (a running total that only grows) and followers
let figures = null;
const audience = { likes: 0, followers: 0 };

const refreshTicker = throttled(async () => {
  try {
    figures = await api(`/api/rooms/${ROOM}/dashboard`, { token: session.token });
    renderTicker();
  } catch (error) {
    say(productResult, errorText(error), "error");
  }
}, 1500);

function renderTicker() {
  $("#ticker-likes").textContent = number(audience.likes);
  $("#ticker-likes-word").textContent = t("studio.likes", { count: audience.likes });
  $("#ticker-followers").textContent = number(audience.followers);
  $("#ticker-followers-word").textContent = t("studio.followers", { count: audience.followers });
  if (!figures) return;
  const { orders, units, gmv_minor: revenue } = figures.totals;
  $("#ticker-orders").textContent = number(orders);
  $("#ticker-orders-word").textContent = t("studio.orders", { count: orders });
  $("#ticker-units").textContent = number(units);
  $("#ticker-units-word").textContent = t("studio.units", { count: units });
  $("#ticker-revenue").textContent = money(revenue, figures.currency);
}

function onSnapshot(snapshot) {
  shop.loadSnapshot(snapshot);
  chat.load(snapshot.chat || []);
  drawChanged(snapshot.draw);
  audience.likes = Math.max(audience.likes, snapshot.likes ? snapshot.likes.total : 0);
  audience.followers = snapshot.follow ? snapshot.follow.followers : audience.followers;
  renderAll();
  refreshTicker();
}

function onEvent(type, data, message) {
  if (chatEvent(chat, type, data)) return;
  if (type === "likes" || type === "followers") {
    if (type === "likes") audience.likes = Math.max(audience.likes, data.total);
    else audience.followers = data.followers;
    renderTicker();
    return;
  }
  if (type === "stream.live" && !broadcast.since) broadcast.since = message.ts * 1000;
  if (shop.apply(type, data)) renderAll();
  else if (type === "draw.started" || type === "draw.closed") drawChanged(data);
  else if (type === "draw.entrants" && withEntrants(draw, data)) {
    draw = withEntrants(draw, data);
    renderDraw();
  }
  else if (type === "order.feed") refreshTicker();
}

function renderAll() {
  $("#viewers").textContent = t("viewers", { count: shop.viewers, number: number(shop.viewers) });
  renderLive();
  renderMicrophone();
  renderTicker();
  renderProducts();
  if (draw) renderDraw();
}

function connectionStatus(status, reason) {
  if (status === "connected") say($("#signin-result"), "");
  const line = $("#stage-status");
  if (status === "closed") line.textContent = reason || t("studio.disconnected");
  else if (status === "reconnecting" || status === "offline") uplink(t("studio.room_reconnecting"));
  else if (status === "connected" && $("#uplink").textContent === t("studio.room_reconnecting")) uplink("");
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
      uplink(errorText(error), "error");
    }
  });
}

async function main() {
  session = await Promise.race([staffSession(), keyOnly()]);
  show($("#studio"), true);
  setupSheets();
  onLanguage(renderAll);
  for (const node of document.querySelectorAll("[data-staff], #staff-chat, #ticker")) show(node, Boolean(session));
  show($("#new-key"), Boolean(session));
  $("#me-name").textContent = session ? session.user.display_name : t("studio.key_only_name");
  keywordField();
  renderAll();
  signOutButton($("#sign-out"));
  setupEncoderPanel();
  $("#camera").addEventListener("change", cameraChanged);
  $("#microphone").addEventListener("change", cameraChanged);
  $("#go-live").addEventListener("click", goLive);
  $("#end-live").addEventListener("click", confirmEnd);
  $("#flip").addEventListener("click", flipCamera);
  $("#mute").addEventListener("click", toggleMicrophone);
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

main().catch((error) => uplink(errorText(error), "error"));
