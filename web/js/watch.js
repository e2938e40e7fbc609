// The viewer's page: the stream (WHEP, muted autoplay), chat, the pinned card with Buy and pay,
// prize draws, and a room socket that resumes silently after the network comes back.

import { api, idempotencyKey, joinAsGuest, loadSession } from "./api.js";
import { ChatView, chatEvent, chatForm } from "./chat.js";
import { prizeText, ruleText, showWinners, verifyInto } from "./draws.js";
import { countdown, everySecond, money, toMillis } from "./format.js";
import { RoomSocket } from "./room.js";
import { Shop } from "./shop.js";
import { $, busy, h, roomId, say, show } from "./ui.js";
import { play } from "./whep.js";

const ROOM = roomId();
const WHEP_URL = new URL(`/api/rooms/${ROOM}/whep`, location.href).toString();
const SCOPE = "viewer";
const SILENT_RECONNECT_MS = 3000;
const VIDEO_RETRY_MS = [500, 1000, 2000, 4000];

const shop = new Shop();
const chat = new ChatView($("#chat-list"));
const orders = new Map();
let room = null;
let me = null;

// ---- who is watching: a guest with a name, made on the first visit --------------------------

async function viewerSession() {
  return loadSession(SCOPE) || joinAsGuest(SCOPE, `Guest ${Math.floor(1000 + Math.random() * 9000)}`);
}

function setupRename() {
  const form = $("#rename-form");
  $("#rename").addEventListener("click", () => {
    show(form, form.hidden);
    $("#rename-input").value = me.user.display_name;
    $("#rename-input").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      me = await busy(form, () => joinAsGuest(SCOPE, $("#rename-input").value.trim()));
      show(form, false);
      connect();
    } catch (error) {
      say($("#chat-status"), error.message, "error");
    }
  });
}

// ---- the video --------------------------------------------------------------------------------

const video = $("#video");
const stageStatus = $("#stage-status");
const player = { session: null, starting: false, attempt: 0, problem: "" };

async function startVideo() {
  if (player.session || player.starting || !shop.live) return;
  player.starting = true;
  stageStatus.textContent = "Starting the video…";
  try {
    const session = await play(WHEP_URL, video);
    player.session = session;
    player.attempt = 0;
    player.problem = "";
    progress.since = Date.now();
    session.pc.addEventListener("connectionstatechange", () => {
      const state = session.pc.connectionState;
      if (state === "failed" || state === "closed") videoLost(session);
    });
  } catch (error) {
    if (error.code === "not_live") shop.live = false;
    else player.problem = error.message;
    retryVideo();
  } finally {
    player.starting = false;
    renderStage();
  }
}

function videoLost(session) {
  if (player.session !== session) return;
  player.session = null;
  session.stop();
  retryVideo();
  renderStage();
}

function retryVideo() {
  if (!shop.live) return;
  const delay = VIDEO_RETRY_MS[Math.min(player.attempt, VIDEO_RETRY_MS.length - 1)];
  player.attempt += 1;
  setTimeout(startVideo, delay);
}

function stopVideo() {
  if (player.session) player.session.stop();
  player.session = null;
  video.srcObject = null;
}

// A session whose picture has not moved for a while is replaced by a fresh one: the viewer sees
// a stall and then the stream again, never a frozen frame.
const STALL_RESTART_MS = 8000;
const progress = { time: -1, since: 0 };

function watchForStall() {
  if (!player.session) return;
  if (video.currentTime !== progress.time) {
    progress.time = video.currentTime;
    progress.since = Date.now();
  } else if (Date.now() - progress.since > STALL_RESTART_MS) {
    progress.since = Date.now();
    videoLost(player.session);
  }
}

function renderStage() {
  const badge = $("#live-badge");
  show(badge, shop.live);
  if (!shop.live) stageStatus.textContent = video.dataset.played ? "The stream has ended. Thanks for watching!" : "The stream has not started yet.";
  else if (!player.session) stageStatus.textContent = player.problem ? `Video trouble (${player.problem}); retrying…` : "Connecting to the video…";
  else if (video.readyState < 2) stageStatus.textContent = "Loading…";
  else stageStatus.textContent = "";
  show($("#unmute"), shop.live && video.muted && video.readyState >= 2);
}

video.addEventListener("playing", () => {
  video.dataset.played = "yes";
  renderStage();
});
video.addEventListener("waiting", renderStage);
$("#unmute").addEventListener("click", () => {
  video.muted = false;
  video.play().catch(() => {});
  renderStage();
});

// ---- the pinned card, Buy and pay -------------------------------------------------------------

const skuChoice = $("#sku-choice");
const buyResult = $("#buy-result");
let pendingBuy = null;

function selectedSku() {
  const card = shop.card;
  if (!card) return null;
  return card.skus.find((s) => String(s.sku_id) === skuChoice.value) || card.skus[0];
}

function renderCard() {
  const card = shop.card;
  show($("#card"), Boolean(card));
  if (!card) return;
  $("#card-name").textContent = card.name;
  const image = $("#card-image");
  if (card.image_url && image.getAttribute("src") !== card.image_url) {
    image.hidden = false;
    image.src = card.image_url;
  }
  if (!card.image_url) image.hidden = true;
  const choices = card.skus.map((s) => String(s.sku_id));
  if ([...skuChoice.options].map((o) => o.value).join() !== choices.join()) {
    const previous = skuChoice.value;
    skuChoice.replaceChildren(...card.skus.map((s) => h("option", { value: s.sku_id, text: s.name })));
    if (choices.includes(previous)) skuChoice.value = previous;
  }
  show($("#sku-choice-label"), card.skus.length > 1);
  renderOffer();
}

function renderOffer() {
  const sku = selectedSku();
  if (!sku) return;
  const sale = shop.saleFor(sku.sku_id);
  const price = $("#card-price");
  const listPrice = $("#card-list-price");
  const stock = $("#card-stock");
  const clock = $("#card-countdown");
  const buy = $("#buy");
  if (sale) {
    price.textContent = money(sale.sale_price_minor, sale.currency);
    listPrice.textContent = money(sale.list_price_minor, sale.currency);
    show(listPrice, sale.list_price_minor !== sale.sale_price_minor);
    stock.textContent = sale.available > 0 ? `${sale.available} left` : "Sold out";
    stock.dataset.available = sale.available;
    const upcoming = sale.state === "scheduled";
    clock.textContent = upcoming ? `starts in ${countdown(sale.startsAtMs)}` : `ends in ${countdown(sale.endsAtMs)}`;
    show(clock, true);
    buy.disabled = upcoming || sale.available <= 0 || pendingBuy !== null;
    buy.textContent = sale.available > 0 ? "Buy" : "Sold out";
  } else {
    price.textContent = money(sku.price_minor, sku.currency);
    show(listPrice, false);
    stock.textContent = sku.available > 0 ? `${sku.available} in stock` : "Out of stock";
    stock.dataset.available = sku.available;
    show(clock, false);
    buy.disabled = true;
    buy.textContent = "Not on sale yet";
  }
}

const BUY_ANSWERS = {
  sold_out: "Sold out. Stay tuned: the shop may restock.",
  limit_exceeded: "You already have the most this sale allows per viewer.",
  not_started: "The sale has not started yet.",
  ended: "The sale has ended.",
};

async function buy() {
  const sku = selectedSku();
  if (!sku || pendingBuy) return;
  pendingBuy = { sku_id: sku.sku_id, quantity: 1, idempotency_key: idempotencyKey() };
  renderOffer();
  say(buyResult, "Reserving…", "info");
  await sendBuy();
}

// Send the pending purchase; a dropped connection retries with the same idempotency key, so
// the server answers the same tap once whatever happens to the network.
async function sendBuy() {
  try {
    const answer = await room.send("order.place", pendingBuy);
    pendingBuy = null;
    orderChanged(answer.order);
    say(buyResult, "Reserved for you. Pay below to complete the order.", "ok");
  } catch (error) {
    if (error.code === "disconnected" || error.code === "timeout") {
      say(buyResult, "Connection lost; your tap will be sent again when it is back.", "info");
      return;
    }
    pendingBuy = null;
    say(buyResult, BUY_ANSWERS[error.code] || error.message, "error");
  }
  renderOffer();
}

skuChoice.addEventListener("change", renderOffer);
$("#card-image").addEventListener("error", (event) => show(event.target, false));
$("#buy").addEventListener("click", buy);

function orderChanged(order) {
  if (!order || order.room_id !== ROOM) return;
  orders.set(order.order_id, order);
  renderPay();
}

function payable() {
  return [...orders.values()].find((o) => o.status === "reserved" && toMillis(o.reserved_until) > Date.now()) || null;
}

let payingFor = null;

function renderPay() {
  const order = payable();
  const panel = $("#pay");
  if (!order) {
    show(panel, payingFor !== null);
    if (payingFor !== null) {
      const last = orders.get(payingFor);
      const test = document.body.dataset.payments === "test" ? " (test mode)" : "";
      const outcome = last && last.status === "paid" ? [`Paid${test}. Thank you for your order!`, "ok"]
        : ["The reservation ended before payment; the units went back on sale.", "error"];
      say($("#pay-result"), ...outcome);
      $("#pay-button").hidden = true;
      $("#pay-deadline").textContent = "";
    }
    return;
  }
  if (payingFor !== order.order_id) {
    payingFor = order.order_id;
    $("#pay-button").hidden = false;
    say($("#pay-result"), "");
    $("#stripe-element").replaceChildren();
  }
  show(panel, true);
  $("#pay-summary").textContent = `Order #${order.order_id}: ${order.quantity} × ${money(order.unit_price_minor, order.currency)} = ${money(order.amount_minor, order.currency)}`;
  $("#pay-deadline").textContent = `Held for you for ${countdown(order.reserved_until)}`;
  const testMode = document.body.dataset.payments === "test";
  show($("#pay-test-note"), testMode);
  $("#pay-button").textContent = testMode ? `Pay ${money(order.amount_minor, order.currency)} (test)` : `Pay ${money(order.amount_minor, order.currency)}`;
}

let stripeCheckout = null;

async function pay() {
  const order = payable();
  if (!order) return;
  const button = $("#pay-button");
  const result = $("#pay-result");
  button.disabled = true;
  try {
    if (stripeCheckout && stripeCheckout.orderId === order.order_id) {
      await confirmStripe(stripeCheckout);
      return;
    }
    const start = await api(`/api/orders/${order.order_id}/pay`, { method: "POST", token: me.token, body: {} });
    if (start.mode === "test") {
      const paid = await api(`/api/orders/${order.order_id}/test-confirm`, { method: "POST", token: me.token, body: {} });
      orderChanged(paid.order);
    } else {
      stripeCheckout = await mountStripe(order.order_id, start);
      button.textContent = "Confirm payment";
    }
  } catch (error) {
    say(result, error.message, "error");
  } finally {
    button.disabled = false;
  }
}

function loadStripe() {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  return new Promise((resolve, reject) => {
    const script = h("script", { src: "https://js.stripe.com/v3/" });
    script.addEventListener("load", () => resolve(window.Stripe));
    script.addEventListener("error", () => reject(new Error("The card form could not be loaded. Check the connection.")));
    document.head.append(script);
  });
}

async function mountStripe(orderId, start) {
  const Stripe = await loadStripe();
  const stripe = Stripe(start.publishable_key);
  const elements = stripe.elements({ clientSecret: start.client_secret });
  const element = elements.create("payment");
  element.mount("#stripe-element");
  return { orderId, stripe, elements };
}

async function confirmStripe({ stripe, elements }) {
  const { error } = await stripe.confirmPayment({ elements, redirect: "if_required", confirmParams: { return_url: location.href } });
  if (error) throw error;
  say($("#pay-result"), "Payment sent. Waiting for the confirmation…", "info");
}

$("#pay-button").addEventListener("click", pay);

// ---- prize draws -----------------------------------------------------------------------------

let draw = null;

function drawChanged(next) {
  draw = next;
  renderDraw();
}

function renderDraw() {
  show($("#draw"), Boolean(draw));
  if (!draw) return;
  $("#draw-prize").textContent = prizeText(draw);
  $("#draw-rule").textContent = ruleText(draw);
  const open = draw.state === "open";
  $("#draw-countdown").textContent = open ? `Closes in ${countdown(draw.closesAtMs)}` : "Closed";
  show($("#draw-enter"), open && draw.rule === "keyword" && !draw.entered);
  if (open && draw.entered) say($("#draw-result"), "You are in the draw. Good luck!", "ok");
  showWinners($("#draw-winners"), draw);
  show($("#draw-verify"), draw.state === "closed");
  if (draw.state === "closed" && !draw.winners.length) say($("#draw-result"), "Nobody entered this draw.", "info");
}

function timedDraw(view, previous) {
  const entered = previous && previous.id === view.id ? previous.entered : false;
  return { entered, ...view, closesAtMs: Date.now() + view.remaining_seconds * 1000 };
}

$("#draw-enter").addEventListener("click", async () => {
  try {
    await room.send("draw.enter", { draw_id: draw.id });
    draw.entered = true;
  } catch (error) {
    say($("#draw-result"), error.message, "error");
  }
  renderDraw();
});
// A winner of a stock prize sends where it goes, until the claim deadline.
let claim = null;

function prizeWon(won) {
  say($("#draw-result"), `You won: ${won.prize.text || "a prize"}!`, "ok");
  if (won.prize.sku_id === null || won.prize.sku_id === undefined) return;
  claim = won;
  say($("#claim-result"), "");
  renderClaim();
}

function renderClaim() {
  if (claim && claim.claim_deadline && toMillis(claim.claim_deadline) <= Date.now()) {
    claim = null;
    say($("#claim-result"), "The time to claim this prize has passed.", "error");
  }
  show($("#claim-form"), Boolean(claim));
  if (claim && claim.claim_deadline) $("#claim-deadline").textContent = `Claim by ${new Date(toMillis(claim.claim_deadline)).toLocaleString()}`;
}

function shippingFrom(form) {
  const fields = Object.fromEntries(new FormData(form));
  return { ...fields, country: fields.country.trim().toUpperCase() };
}

$("#claim-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { shipping: shippingFrom(form) };
  try {
    const answer = await busy(form, () => api(`/api/draws/${claim.draw_id}/claim`, { method: "POST", token: me.token, body }));
    claim = null;
    say($("#claim-result"), `Prize claimed (order ${answer.order.order_id}). The shop sends it to this address.`, "ok");
  } catch (error) {
    if (error.code === "claim_expired") claim = null;
    const message = error.code === "claim_expired" ? "The time to claim this prize has passed." : error.message;
    say($("#claim-result"), message, "error");
  }
  renderClaim();
});
$("#draw-verify").addEventListener("toggle", (event) => {
  if (event.target.open && draw) verifyInto($("#draw-verify-body"), draw.id).catch((e) => say($("#draw-result"), e.message, "error"));
});

// ---- the room socket -------------------------------------------------------------------------

let quietTimer = null;

function connectionStatus(status, reason) {
  const line = $("#connection");
  clearTimeout(quietTimer);
  if (status === "connected") {
    show(line, false);
    if (pendingBuy) sendBuy();
  } else if (status === "closed") {
    say(line, reason || "You were disconnected from this room.", "error");
  } else {
    // a short drop is repaired silently; a long one is worth a word
    quietTimer = setTimeout(() => say(line, "Reconnecting… the video keeps playing.", "info"), SILENT_RECONNECT_MS);
  }
}

function onSnapshot(snapshot) {
  shop.loadSnapshot(snapshot);
  chat.load(snapshot.chat || []);
  orders.clear();
  for (const order of snapshot.orders || []) orderChanged(order);
  drawChanged(snapshot.draw ? timedDraw(snapshot.draw, draw) : null);
  renderAll();
}

function onEvent(type, data) {
  if (chatEvent(chat, type, data)) return;
  if (shop.apply(type, data)) {
    renderAll();
    return;
  }
  if (type === "order.updated") orderChanged(data);
  else if (type === "draw.started" || type === "draw.closed") drawChanged(timedDraw(data, draw));
  else if (type === "draw.entered" && draw && draw.id === data.draw_id) drawChanged({ ...draw, entered: true });
  else if (type === "draw.won") prizeWon(data);
  else if (type === "user.muted" && data.user_id === me.user.id) say($("#chat-status"), "A moderator muted you for now.", "error");
}

function renderAll() {
  $("#viewers").textContent = shop.viewers;
  renderCard();
  renderPay();
  renderDraw();
  if (shop.live) startVideo();
  else stopVideo();
  renderStage();
}

function connect() {
  if (room) room.stop();
  $("#me-name").textContent = me.user.display_name;
  room = new RoomSocket({ roomId: ROOM, token: me.token, onEvent, onSnapshot, onStatus: connectionStatus }).start();
}

async function main() {
  chatForm($("#chat-form"), $("#chat-status"), { send: (type, data) => room.send(type, data) });
  setupRename();
  everySecond(() => {
    watchForStall();
    renderOffer();
    renderPay();
    if (draw) renderDraw();
    if (claim) renderClaim();
  });
  me = await viewerSession();
  connect();
}

main().catch((error) => say($("#connection"), error.message, "error"));
