// The shoppable replay: a recording played with hls.js, the live's product cards, flash sales and
// draws on a timeline at the moments they happened, the product shown at any moment bought right
// here at its list price while it is in the room's bag (variant, quantity, the buyer's details,
// paying), and clips; staff mark new clips here. `?t=<seconds>` starts at that moment (a clip's link).

import { ApiError, api, idempotencyKey, loadSession } from "./api.js";
import { Checkout, viewerSession } from "./checkout.js";
import { everySecond, money, number, toMillis } from "./format.js";
import { playHls } from "./hls-play.js";
import { errorText, has, onLanguage, t } from "./i18n.js";
import { skuChoices } from "./shop.js";
import { $, h, say, show } from "./ui.js";

const SESSION = Number(document.body.dataset.sessionId);
const ROOM = Number(document.body.dataset.roomId);
const STAFF_SCOPE = "staff";
const video = $("#video");
let replay = null;
// the room's bag as it is now: a card's product is bought here only while the room offers it
let bag = [];
// the viewer, made a guest on the first purchase when nobody is signed in on this browser
let me = loadSession("viewer");
const orders = new Map();
const checkout = new Checkout({ token: () => me.token, orderById: (id) => orders.get(id), paid: orderChanged });
const skuChoice = $("#sku-choice");
const buyResult = $("#buy-result");
// the purchase being sent: its key is kept for a retry of the same tap after a network failure
let pending = null;
let lastTap = null;

function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function seek(seconds) {
  video.currentTime = seconds;
  video.play().catch(() => {});
}

// The moments in force at `time`: the card on screen, the sale and draw that were open.
export function momentsAt(timeline, time) {
  let card = null;
  let sale = null;
  let draw = null;
  for (const moment of timeline) {
    if (moment.at > time) break;
    if (moment.kind === "card") card = moment.card;
    else if (moment.kind === "sale" && time < moment.until) sale = moment;
    else if (moment.kind === "draw" && time < moment.until) draw = moment;
  }
  return { card, sale, draw };
}

function markerText(moment) {
  if (moment.kind === "card") return moment.card ? moment.card.name : t("replay.card_off");
  if (moment.kind === "sale") return t("replay.sale_marker", { sku: moment.sku_name });
  return t("replay.draw_marker", { prize: moment.prize_text });
}

function renderTimeline() {
  const duration = replay.recording.duration_seconds || 1;
  $("#timeline").replaceChildren(
    ...replay.timeline.map((moment) =>
      h(
        "li",
        { class: "moment", dataset: { kind: moment.kind, at: moment.at }, style: `--at: ${(100 * moment.at) / duration}%` },
        h("button", { type: "button", class: "link", onclick: () => seek(moment.at) }, `${clock(moment.at)} ${markerText(moment)}`),
      ),
    ),
  );
}

function renderClips() {
  $("#clips").replaceChildren(
    ...replay.clips.map((clip) =>
      h("li", {}, h("a", { href: clip.url, onclick: (event) => { event.preventDefault(); seek(clip.offset_seconds); } }, `${clock(clip.offset_seconds)} ${clip.title}`)),
    ),
  );
}

function renderNow() {
  if (!replay) return;
  const { card, sale, draw } = momentsAt(replay.timeline, video.currentTime);
  const section = $("#card");
  const shown = card && section.dataset.productId === String(card.product_id);
  section.dataset.productId = card ? card.product_id : "";
  show(section, Boolean(card));
  if (card) {
    if (!shown) say(buyResult, "");
    $("#card-name").textContent = card.name;
    const image = $("#card-image");
    show(image, Boolean(card.image_url));
    if (card.image_url) image.src = card.image_url;
    renderOffer(card);
  }
  const saleNote = $("#card-sale");
  show(saleNote, Boolean(sale));
  if (sale) {
    saleNote.textContent = t("replay.sale_was", { price: money(sale.sale_price_minor, sale.currency) });
  }
  const drawNote = $("#draw-note");
  show(drawNote, Boolean(draw));
  if (draw) drawNote.textContent = t("replay.draw_was", { prize: draw.prize_text });
}

// The card's product as the bag has it now (current list prices and free stock), or null when the
// room no longer offers it.
function offered(card) {
  return bag.find((product) => product.product_id === card.product_id && product.skus.length) || null;
}

function selectedSku(product) {
  return product.skus.find((s) => String(s.sku_id) === skuChoice.value) || product.skus[0];
}

function renderOffer(card) {
  const product = offered(card);
  show($("#card-not-offered"), !product);
  show($("#card-offer"), Boolean(product));
  if (!product) {
    const sku = card.skus[0];
    $("#card-price").textContent = sku ? money(sku.price_minor, sku.currency) : "";
    return;
  }
  skuChoices(skuChoice, product.skus);
  show($("#sku-choice-label"), product.skus.length > 1);
  const sku = selectedSku(product);
  $("#card-price").textContent = money(sku.price_minor, sku.currency);
  const stock = $("#card-stock");
  stock.textContent = sku.available > 0 ? t("watch.in_stock", { count: number(sku.available) }) : t("watch.out_of_stock");
  stock.dataset.available = sku.available;
  $("#quantity").max = String(Math.max(1, Math.min(100, sku.available)));
  // a SKU with an open flash sale is bought in that sale, on the live page: here, list price only
  show($("#card-live-sale"), Boolean(sku.sale));
  const button = $("#buy");
  button.disabled = sku.available <= 0 || Boolean(sku.sale) || pending !== null;
  button.textContent = sku.available > 0 ? t("watch.buy") : t("watch.out_of_stock");
  button.setAttribute("aria-label", `${button.textContent}: ${product.name}`);
}

async function refreshBag() {
  try {
    bag = (await api(`/api/rooms/${ROOM}/bag`)).products;
  } catch {
    // the bag read before stays
  }
  renderNow();
}

// Buy the chosen variant at its list price (POST /api/orders with the room and the SKU): the
// reservation then waits for the buyer's details and payment in the checkout below the card.
async function buy(event) {
  event.preventDefault();
  const card = momentsAt(replay.timeline, video.currentTime).card;
  const product = card && offered(card);
  if (!product || pending) return;
  const sku = selectedSku(product);
  const quantity = Number($("#quantity").value);
  const most = Math.min(100, sku.available);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > most) {
    say(buyResult, t("bag.quantity_range", { most: number(Math.max(1, most)) }), "error");
    return;
  }
  // the same tap sent again after a network failure keeps its key: the server answers it once
  const same = lastTap && lastTap.sku_id === sku.sku_id && lastTap.quantity === quantity;
  pending = same ? lastTap : { room_id: ROOM, sku_id: sku.sku_id, quantity, idempotency_key: idempotencyKey() };
  lastTap = pending;
  renderNow();
  say(buyResult, t("watch.reserving"), "info");
  try {
    if (!me) {
      me = await viewerSession();
      await checkout.loadSavedDetails();
    }
    const answer = await api("/api/orders", { method: "POST", token: me.token, body: pending });
    lastTap = null;
    orderChanged(answer.order);
    say(buyResult, t("watch.reserved"), "ok");
    $("#pay").scrollIntoView({ block: "nearest" });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "network")) lastTap = null;
    say(buyResult, has(`buy.${error.code}`) ? t(`buy.${error.code}`) : errorText(error), "error");
  } finally {
    pending = null;
  }
  await refreshBag();
}

function orderChanged(order) {
  if (!order || order.room_id !== ROOM) return;
  orders.set(order.order_id, order);
  if (order.status !== "reserved" && buyResult.dataset.tone === "ok") say(buyResult, "");
  renderPay();
}

function renderPay() {
  const held = [...orders.values()].find((o) => o.status === "reserved" && toMillis(o.reserved_until) > Date.now());
  checkout.render(held || null);
}

// Stripe's payment reaches the watch page as an order event; with no room socket here, the order
// being paid with Stripe is read again every few seconds until it is paid or let go.
const STRIPE_POLL_S = 3;
let ticks = 0;

async function tick() {
  renderPay();
  ticks += 1;
  const paying = checkout.stripe && orders.get(checkout.stripe.orderId);
  if (!paying || paying.status !== "reserved" || ticks % STRIPE_POLL_S) return;
  try {
    orderChanged((await api(`/api/orders/${paying.order_id}`, { token: me.token })).order);
  } catch {
    // asked again at the next turn
  }
}

// A viewer back on the page finds an order still held for them ready to pay.
async function loadOrders() {
  if (!me) return;
  try {
    for (const order of (await api(`/api/orders?room_id=${ROOM}`, { token: me.token })).orders) orderChanged(order);
  } catch {
    // nothing held is shown; buying still works
  }
  await checkout.loadSavedDetails();
}

async function markClip(event) {
  event.preventDefault();
  const staff = loadSession(STAFF_SCOPE);
  const form = event.target;
  try {
    const clip = await api(`/api/recordings/${SESSION}/clips`, {
      method: "POST",
      token: staff.token,
      body: { offset_seconds: Math.round(video.currentTime * 10) / 10, title: form.title.value },
    });
    replay.clips.push(clip);
    replay.clips.sort((a, b) => a.offset_seconds - b.offset_seconds);
    renderClips();
    form.reset();
    say($("#clip-result"), t("replay.clip_made", { url: new URL(clip.url, location.href).toString() }));
  } catch (error) {
    say($("#clip-result"), errorText(error), "error");
  }
}

async function main() {
  replay = await api(`/api/recordings/${SESSION}`);
  if (!replay.recording.playlist_url) {
    say($("#replay-status"), t(replay.recording.state === "failed" ? "replay.failed" : "replay.not_ready"), "error");
  } else {
    const start = Number(new URLSearchParams(location.search).get("t"));
    if (start > 0) video.addEventListener("loadedmetadata", () => { video.currentTime = start; }, { once: true });
    await playHls(replay.recording.playlist_url, video, {
      live: false,
      onFatal: (error) => say($("#replay-status"), error.message, "error"),
    });
  }
  show($("#clip-form"), Boolean(loadSession(STAFF_SCOPE)));
  $("#clip-form").addEventListener("submit", markClip);
  $("#card-offer").addEventListener("submit", buy);
  skuChoice.addEventListener("change", () => renderNow());
  $("#card-image").addEventListener("error", (event) => show(event.target, false));
  await Promise.all([refreshBag(), loadOrders()]);
  everySecond(tick);
  video.addEventListener("timeupdate", renderNow);
  video.addEventListener("seeked", renderNow);
  renderTimeline();
  renderClips();
  renderNow();
  onLanguage(() => {
    renderTimeline();
    renderNow();
    renderPay();
  });
}

main().catch((error) => say($("#replay-status"), errorText(error), "error"));
