// The viewer's page, phone first: the stream full screen (WHEP, muted autoplay; LL-HLS when WebRTC
// cannot connect or the node is full) with chat, the pinned card, Buy, the live's bag (its products,
// variants and quantity), likes, follow and share over it; checkout with the buyer's details
// (remembered for next time), paying, keeping a guest's orders by signing up, prize draws, and a room
// socket that resumes silently after the network comes back.

import { api, idempotencyKey, joinAsGuest, signIn, signUp } from "./api.js";
import { ChatView, chatEvent, chatForm } from "./chat.js";
import { Checkout, SCOPE, viewerSession } from "./checkout.js";
import { entrantsText, prizeText, ruleText, showWinners, verifyInto, withEntrants } from "./draws.js";
import { countdown, dateTime, everySecond, money, number, toMillis } from "./format.js";
import { errorText, has, onLanguage, t } from "./i18n.js";
import { Likes } from "./likes.js";
import { RoomSocket } from "./room.js";
import { Shop, skuChoices } from "./shop.js";
import { $, busy, h, roomId, say, setupSheets, sheet, show } from "./ui.js";
import { playHls } from "./hls-play.js";
import { play } from "./whep.js";

const ROOM = roomId();
const WHEP_URL = new URL(`/api/rooms/${ROOM}/whep`, location.href).toString();
const SILENT_RECONNECT_MS = 3000;
const VIDEO_RETRY_MS = [500, 1000, 2000, 4000];
// a WebRTC session that has not connected by then (UDP blocked, no TURN) gives way to HLS
const WEBRTC_CONNECT_MS = 10_000;

const shop = new Shop();
const chat = new ChatView($("#chat-list"));
const orders = new Map();
// every private event about one's own order carries the order as it is now
const ORDER_EVENTS = new Set(["order.updated", "order.cancelled", "order.refunded", "order.shipped", "order.delivered",
  "order.closed", "order.return_requested", "order.return_accepted", "order.return_refused"]);
// statuses of orders whose units count toward a sale's per-viewer limit
const HOLDING = new Set(["reserved", "paid", "shipped", "delivered", "closed", "return_requested"]);
let room = null;
let me = null;
const likes = new Likes({
  button: $("#like"),
  count: $("#like-count"),
  hearts: $("#hearts"),
  send: (type, data) => room.send(type, data),
});
// the room's followers and whether this viewer is one of them (guests never are)
let follow = { followers: 0, following: false };
// what the room socket is doing: "connecting", "connected", "reconnecting", "offline", "closed"
const link = { status: "connecting", reason: "" };

// ---- who is watching: a guest with a name, made on the first visit --------------------------

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
      say($("#chat-status"), errorText(error), "error");
    }
  });
}

// ---- following the room: signed-in viewers only; a guest is asked to sign in first ----------

function renderFollow() {
  const button = $("#follow");
  button.setAttribute("aria-pressed", String(follow.following));
  button.textContent = follow.following ? t("watch.following") : t("watch.follow");
  button.title = t("follow.followers", { count: follow.followers, number: number(follow.followers) });
}

async function setFollowing(following) {
  follow = await api(`/api/rooms/${ROOM}/follow`, { method: following ? "POST" : "DELETE", token: me.token });
  renderFollow();
}

function setupFollow() {
  const panel = $("#follow-signin");
  const form = $("#follow-signin-form");
  $("#follow").addEventListener("click", async () => {
    if (me.user.is_guest) {
      sheet(panel, true);
      return;
    }
    try {
      await setFollowing(!follow.following);
    } catch (error) {
      say($("#chat-status"), errorText(error), "error");
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      // a guest's orders, details and draw entries go with them into the account
      const guestToken = me && me.user.is_guest ? me.token : undefined;
      me = await busy(form, () => signIn(SCOPE, form.elements.login.value, form.elements.password.value, guestToken));
      await setFollowing(true);
      sheet(panel, false);
      connect();
    } catch (error) {
      say($("#follow-result"), errorText(error), "error");
    }
  });
}

// ---- the video --------------------------------------------------------------------------------

const video = $("#video");
const stageStatus = $("#stage-status");
// transport: "webrtc" first; "hls" once WebRTC could not connect or the node was full (for the
// rest of the visit: HLS is a few seconds behind, switching back and forth would jump)
const player = { session: null, starting: false, attempt: 0, problem: "", transport: "webrtc" };

async function startVideo() {
  if (player.session || player.starting || !shop.live) return;
  player.starting = true;
  try {
    if (player.transport === "hls") await startHls();
    else await startWebrtc();
    player.attempt = 0;
    player.problem = "";
    progress.since = Date.now();
  } catch (error) {
    if (error.code === "not_live") shop.live = false;
    else if (error.status === 503 && player.transport === "webrtc") player.transport = "hls";
    else player.problem = errorText(error);
    retryVideo();
  } finally {
    player.starting = false;
    renderStage();
  }
}

async function startWebrtc() {
  const session = await play(WHEP_URL, video);
  session.transport = "webrtc";
  session.connected = false;
  player.session = session;
  session.pc.addEventListener("connectionstatechange", () => {
    const state = session.pc.connectionState;
    if (state === "connected") session.connected = true;
    else if (state === "failed" || state === "closed") videoLost(session);
  });
  setTimeout(() => {
    if (!session.connected && player.session === session) videoLost(session);
  }, WEBRTC_CONNECT_MS);
}

async function startHls() {
  const status = await api(`/api/rooms/${ROOM}/stream`);
  if (status.state === "offline") throw Object.assign(new Error(t("watch.not_started")), { code: "not_live" });
  if (!status.hls_url) {
    // this live has no HLS (VP8 video): WebRTC is the only way, keep trying it
    player.transport = "webrtc";
    throw Object.assign(new Error(t("watch.no_hls")), { code: "no_hls" });
  }
  video.srcObject = null;
  const session = await playHls(new URL(status.hls_url, location.href).toString(), video, {
    live: true,
    onFatal: () => videoLost(session),
  });
  session.transport = "hls";
  player.session = session;
}

// A WebRTC session that never connected (UDP blocked, no TURN) sends the page to HLS.
function videoLost(session) {
  if (player.session !== session) return;
  player.session = null;
  session.stop();
  if (session.transport === "webrtc" && !session.connected) player.transport = "hls";
  retryVideo();
  renderStage();
}

function retryVideo() {
  if (!shop.live) return;
  const delay = VIDEO_RETRY_MS[Math.min(player.attempt, VIDEO_RETRY_MS.length - 1)];
  player.attempt += 1;
  setTimeout(startVideo, delay);
}

// The stream ended: the server has already removed the session, so close without a DELETE.
function stopVideo() {
  if (player.session?.transport === "webrtc") player.session.abandon();
  else if (player.session) player.session.stop();
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

// One word for where the viewer stands: connecting, live, reconnecting, ended, or not started.
function stageState() {
  if (link.status === "connecting") return "connecting";
  if (link.status !== "connected") return "reconnecting";
  if (!shop.live) return video.dataset.played ? "ended" : "off";
  return player.session && video.readyState >= 2 ? "live" : "connecting";
}

function renderStage() {
  const state = stageState();
  const badge = $("#live-badge");
  badge.dataset.state = state;
  badge.textContent = t(`badge.${state}`);
  let status = "";
  if (state === "ended") status = t("watch.ended");
  else if (state === "off") status = t("watch.not_started");
  else if (state === "connecting") status = player.problem ? t("watch.video_trouble", { problem: player.problem }) : t("watch.connecting");
  stageStatus.textContent = status;
  const transport = $("#transport");
  const playing = state === "live" ? player.session?.transport : "";
  transport.dataset.transport = playing || "";
  transport.textContent = playing ? t(`watch.transport_${playing}`) : "";
  show($("#unmute"), state === "live" && video.muted);
}

// A portrait stream fills a portrait screen; anything else is shown whole.
function fitVideo() {
  const portraitVideo = video.videoHeight > video.videoWidth;
  const portraitScreen = innerHeight > innerWidth;
  video.dataset.fit = portraitVideo && portraitScreen ? "cover" : "contain";
}

video.addEventListener("loadedmetadata", fitVideo);
video.addEventListener("resize", fitVideo);
addEventListener("resize", fitVideo);
video.addEventListener("playing", () => {
  video.dataset.played = "yes";
  fitVideo();
  renderStage();
});
video.addEventListener("waiting", renderStage);
function unmute() {
  if (!video.muted) return;
  video.muted = false;
  video.play().catch(() => {});
  renderStage();
}

$("#unmute").addEventListener("click", unmute);
// a tap anywhere on the picture turns the sound on, as in every live app
$(".stage").addEventListener("click", unmute);

// ---- share -----------------------------------------------------------------------------------

$("#share").addEventListener("click", async () => {
  const url = location.href;
  try {
    if (navigator.share) await navigator.share({ title: document.title, url });
    else {
      await navigator.clipboard.writeText(url);
      say($("#chat-status"), t("watch.link_copied"), "ok");
    }
  } catch (error) {
    if (error.name !== "AbortError") say($("#chat-status"), t("watch.share_failed", { url }), "info");
  }
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
  skuChoices(skuChoice, card.skus);
  show($("#sku-choice-label"), card.skus.length > 1);
  renderOffer();
}

// Units this viewer holds (reserved or paid) in a sale: Buy stops at the sale's per-viewer limit.
function heldIn(sale) {
  let units = 0;
  for (const order of orders.values()) {
    if (order.sale_id === sale.sale_id && HOLDING.has(order.status)) units += order.quantity;
  }
  return units;
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
    stock.textContent = sale.available > 0 ? t("watch.left", { count: number(sale.available) }) : t("watch.sold_out");
    stock.dataset.available = sale.available;
    const upcoming = sale.state === "scheduled";
    clock.textContent = upcoming ? t("watch.starts_in", { time: countdown(sale.startsAtMs) }) : t("watch.ends_in", { time: countdown(sale.endsAtMs) });
    show(clock, true);
    const atLimit = sale.per_user_limit !== undefined && heldIn(sale) >= sale.per_user_limit;
    buy.disabled = upcoming || sale.available <= 0 || atLimit || pendingBuy !== null;
    buy.textContent = sale.available <= 0 ? t("watch.sold_out") : atLimit ? t("watch.at_limit") : t("watch.buy");
  } else {
    price.textContent = money(sku.price_minor, sku.currency);
    show(listPrice, false);
    stock.textContent = sku.available > 0 ? t("watch.in_stock", { count: number(sku.available) }) : t("watch.out_of_stock");
    stock.dataset.available = sku.available;
    show(clock, false);
    buy.disabled = sku.available <= 0 || pendingBuy !== null;
    buy.textContent = sku.available > 0 ? t("watch.buy") : t("watch.out_of_stock");
  }
  buy.setAttribute("aria-label", `${buy.textContent}: ${shop.card.name}`);
}

// One purchase at a time, from the pinned card or the bag: the tap and where its answer is said.
function startBuy(skuId, quantity, result) {
  if (pendingBuy) return;
  pendingBuy = { tap: { sku_id: skuId, quantity, idempotency_key: idempotencyKey() }, result };
  renderOffer();
  renderProduct();
  say(result, t("watch.reserving"), "info");
  sendBuy();
}

function buy() {
  const sku = selectedSku();
  if (sku) startBuy(sku.sku_id, 1, buyResult);
}

// Send the pending purchase; a dropped connection retries with the same idempotency key, so
// the server answers the same tap once whatever happens to the network. One send at a time: a
// tap made while (re)joining is sent by the room socket once it has joined.
let buyInFlight = false;

async function sendBuy() {
  if (buyInFlight) return;
  buyInFlight = true;
  const { tap, result } = pendingBuy;
  try {
    const answer = await room.send("order.place", tap);
    pendingBuy = null;
    orderChanged(answer.order);
    say(result, t("watch.reserved"), "ok");
    sheet($("#bag"), true);
    refreshBag();
    $("#pay").scrollIntoView({ block: "nearest" });
  } catch (error) {
    if (error.code === "disconnected" || error.code === "timeout") {
      say(result, t("watch.tap_queued"), "info");
      return;
    }
    pendingBuy = null;
    say(result, has(`buy.${error.code}`) ? t(`buy.${error.code}`) : errorText(error), "error");
  } finally {
    buyInFlight = false;
  }
  renderOffer();
  renderProduct();
}

// ---- the live's bag: its products, each with its variants (SKUs) and a quantity ---------------

const productForm = $("#product");
const productResult = $("#product-result");
// the product the viewer opened in the bag, and the variant chosen
let chosen = null;

function bagProduct(productId) {
  return shop.bag.find((product) => product.product_id === productId) || null;
}

// What one variant sells at now: its flash sale's price and units while one runs, else its list price.
function offerOf(sku) {
  const sale = shop.saleFor(sku.sku_id);
  if (sale) return { price: sale.sale_price_minor, list: sale.list_price_minor, currency: sale.currency, left: sale.available, sale };
  return { price: sku.price_minor, list: sku.price_minor, currency: sku.currency, left: sku.available, sale: null };
}

function renderBag() {
  const products = shop.bag.filter((product) => product.skus.length);
  $("#bag-products").replaceChildren(...products.map((product) => {
    const offers = product.skus.map(offerOf);
    const cheapest = offers.reduce((a, b) => (b.price < a.price ? b : a));
    const left = offers.reduce((sum, offer) => sum + Math.max(0, offer.left), 0);
    const pinned = shop.card && shop.card.product_id === product.product_id;
    return h("li", { dataset: { productId: product.product_id, pinned: pinned ? "yes" : undefined } },
      product.image_url ? h("img", { class: "bag-image", src: product.image_url, alt: "" }) : null,
      h("span", { class: "bag-info" },
        h("span", { class: "bag-name", text: product.name }),
        h("span", { class: "muted", text: t(product.skus.length > 1 ? "bag.from" : "bag.price", { price: money(cheapest.price, cheapest.currency) })
          + " · " + (left > 0 ? t("watch.left", { count: number(left) }) : t("watch.sold_out")) })),
      h("button", { type: "button", class: "chip", text: t("bag.choose"), "aria-label": `${t("bag.choose")}: ${product.name}`,
        onclick: () => choose(product.product_id) }));
  }));
  show($("#bag-empty"), !products.length);
  renderProduct();
}

function choose(productId) {
  const product = bagProduct(productId);
  if (!product) return;
  const inStock = product.skus.find((sku) => offerOf(sku).left > 0) || product.skus[0];
  chosen = { productId, skuId: inStock.sku_id };
  $("#quantity").value = "1";
  say(productResult, "");
  renderProduct();
  productForm.scrollIntoView({ block: "nearest" });
  $("#product-name").focus({ preventScroll: true });
}

// The most units of a variant one tap may ask for: what is left, within a sale's per-viewer limit.
function mostUnits(offer) {
  let most = Math.min(100, offer.left);
  if (offer.sale && offer.sale.per_user_limit !== undefined) most = Math.min(most, offer.sale.per_user_limit - heldIn(offer.sale));
  return Math.max(0, most);
}

function renderProduct() {
  const product = chosen && bagProduct(chosen.productId);
  show(productForm, Boolean(product && product.skus.length));
  if (!product || !product.skus.length) return;
  const sku = product.skus.find((s) => s.sku_id === chosen.skuId) || product.skus[0];
  chosen.skuId = sku.sku_id;
  $("#product-name").textContent = product.name;
  const image = $("#product-image");
  show(image, Boolean(product.image_url));
  if (product.image_url && image.getAttribute("src") !== product.image_url) image.src = product.image_url;
  const variants = $("#variants");
  const ids = product.skus.map((s) => String(s.sku_id)).join();
  if (variants.dataset.skus !== ids) {
    variants.dataset.skus = ids;
    variants.replaceChildren(variants.querySelector("legend"), ...product.skus.map((s) =>
      h("label", { class: "variant" }, h("input", { type: "radio", name: "variant", value: s.sku_id }), h("span", { text: s.name }))));
  }
  for (const input of variants.querySelectorAll("input")) input.checked = Number(input.value) === sku.sku_id;
  show(variants, product.skus.length > 1);
  const offer = offerOf(sku);
  $("#product-price").textContent = money(offer.price, offer.currency);
  $("#product-list-price").textContent = money(offer.list, offer.currency);
  show($("#product-list-price"), offer.list !== offer.price);
  $("#product-stock").textContent = offer.left > 0 ? t("watch.left", { count: number(offer.left) }) : t("watch.sold_out");
  const most = mostUnits(offer);
  $("#quantity").max = String(Math.max(1, most));
  const upcoming = offer.sale && offer.sale.state === "scheduled";
  const button = $("#product-buy");
  button.disabled = upcoming || most < 1 || pendingBuy !== null;
  button.textContent = offer.left <= 0 ? t("watch.sold_out") : upcoming ? t("watch.starts_in", { time: countdown(offer.sale.startsAtMs) })
    : most < 1 ? t("watch.at_limit") : t("watch.buy");
}

$("#variants").addEventListener("change", (event) => {
  chosen.skuId = Number(event.target.value);
  say(productResult, "");
  renderProduct();
});

productForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const product = chosen && bagProduct(chosen.productId);
  const sku = product && product.skus.find((s) => s.sku_id === chosen.skuId);
  if (!sku) return;
  const quantity = Number($("#quantity").value);
  const most = mostUnits(offerOf(sku));
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > most) {
    say(productResult, t("bag.quantity_range", { most: number(Math.max(1, most)) }), "error");
    return;
  }
  startBuy(sku.sku_id, quantity, productResult);
});

// The bag's products arrive on the room socket; their stock is read again when the bag is opened
// and after each reservation.
async function refreshBag() {
  try {
    shop.bag = (await api(`/api/rooms/${ROOM}/bag`)).products;
    renderBag();
  } catch {
    // the products from the room socket stay on show
  }
}

$("#bag-button").addEventListener("click", refreshBag);

skuChoice.addEventListener("change", renderOffer);
$("#card-image").addEventListener("error", (event) => show(event.target, false));
$("#buy").addEventListener("click", buy);

function orderChanged(order) {
  if (!order || order.room_id !== ROOM) return;
  orders.set(order.order_id, order);
  // the reservation's words are stale once the order is paid or let go
  if (order.status !== "reserved" && buyResult.dataset.tone === "ok") say(buyResult, "");
  renderPay();
  renderOrders();
  renderProduct();
}

function renderOrders() {
  const list = [...orders.values()].sort((a, b) => b.order_id - a.order_id);
  $("#order-list").replaceChildren(...list.map((order) => h("li", { dataset: { status: order.status } },
    h("span", { text: t("watch.order_line", { id: order.order_id, quantity: order.quantity, amount: money(order.amount_minor, order.currency) }) }),
    h("span", { class: "status", text: t(`order.${order.status}`) }))));
  show($("#no-orders"), !list.length);
  const open = list.filter((o) => o.status === "reserved").length;
  $("#bag-count").textContent = number(open);
  show($("#bag-count"), open > 0);
  show($("#keep-orders"), Boolean(me && me.user.is_guest && list.length));
}

function payable() {
  return [...orders.values()].find((o) => o.status === "reserved" && toMillis(o.reserved_until) > Date.now()) || null;
}

// ---- checkout: the buyer's details, on each order as given, remembered if asked; then paying ---

const checkout = new Checkout({ token: () => me.token, orderById: (id) => orders.get(id), paid: orderChanged });

function renderPay() {
  checkout.render(payable());
}

// A guest keeps their orders by signing up: the guest becomes the account.
$("#signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    me = await busy(form, () => signUp(SCOPE, form.elements.login.value.trim(), form.elements.password.value, me.token));
    say($("#signup-result"), t("signup.done"), "ok");
    show(form, false);
    connect();
  } catch (error) {
    say($("#signup-result"), errorText(error), "error");
  }
});

// ---- prize draws -----------------------------------------------------------------------------

let draw = null;

function drawChanged(next) {
  const started = next && next.state === "open" && (!draw || draw.id !== next.id);
  draw = next;
  if (started) sheet($("#draw"), true);
  renderDraw();
}

function renderDraw() {
  const chip = $("#draw-chip");
  show(chip, Boolean(draw));
  if (!draw) {
    sheet($("#draw"), false);
    return;
  }
  const open = draw.state === "open";
  chip.textContent = open ? t("draw.chip_open", { time: countdown(draw.closesAtMs) }) : t("draw.chip_closed");
  $("#draw-prize").textContent = prizeText(draw);
  $("#draw-rule").textContent = ruleText(draw);
  show($("#draw-entrants"), open && draw.rule === "keyword");
  $("#draw-entrants").textContent = entrantsText(draw);
  $("#draw-countdown").textContent = open ? t("draw.closes_in", { time: countdown(draw.closesAtMs) }) : t("draw.closed");
  show($("#draw-enter"), open && draw.rule === "keyword" && !draw.entered);
  if (open && draw.entered) say($("#draw-result"), t("draw.entered"), "ok");
  showWinners($("#draw-winners"), draw);
  show($("#draw-verify"), draw.state === "closed");
  if (draw.state === "closed") say($("#draw-result"), ...drawOutcome(draw));
}

// What a closed draw means for this viewer: won, not this time, or nobody took part.
function drawOutcome(closed) {
  if (!closed.winners.length) return [t("draw.nobody"), "info"];
  const won = closed.winners.some((w) => me && w.user_id === me.user.id);
  if (won) return [t("draw.you_won", { prize: prizeText(closed) }), "ok"];
  if (closed.entered || closed.rule !== "keyword") return [t("draw.not_won"), "info"];
  return [t("draw.over"), "info"];
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
    say($("#draw-result"), errorText(error), "error");
  }
  renderDraw();
});
// A winner of a stock prize sends where it goes, until the claim deadline.
let claim = null;

function prizeWon(won) {
  say($("#draw-result"), t("draw.you_won", { prize: won.prize.text || t("draw.a_prize") }), "ok");
  sheet($("#draw"), true);
  if (won.prize.sku_id === null || won.prize.sku_id === undefined) return;
  claim = won;
  say($("#claim-result"), "");
  // a winner who checked out before finds the same address filled in
  const claimForm = $("#claim-form");
  for (const input of claimForm.querySelectorAll("input")) {
    const given = checkout.form.elements[input.name];
    if (!input.value && given) input.value = given.value;
  }
  renderClaim();
}

function renderClaim() {
  if (claim && claim.claim_deadline && toMillis(claim.claim_deadline) <= Date.now()) {
    claim = null;
    say($("#claim-result"), t("error.claim_expired"), "error");
  }
  show($("#claim-form"), Boolean(claim));
  if (claim && claim.claim_deadline) $("#claim-deadline").textContent = t("claim.by", { time: dateTime(claim.claim_deadline) });
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
    say($("#claim-result"), t("claim.done", { id: answer.order.order_id }), "ok");
  } catch (error) {
    if (error.code === "claim_expired") claim = null;
    say($("#claim-result"), errorText(error), "error");
  }
  renderClaim();
});
$("#draw-verify").addEventListener("toggle", (event) => {
  if (event.target.open && draw) verifyInto($("#draw-verify-body"), draw.id).catch((e) => say($("#draw-result"), errorText(e), "error"));
});

// ---- the room socket -------------------------------------------------------------------------

let quietTimer = null;

function connectionStatus(status, reason) {
  const line = $("#connection");
  clearTimeout(quietTimer);
  // the first connection is "connecting"; any later one is a reconnection the badge shows
  link.status = status === "connecting" && link.status !== "connecting" ? "reconnecting" : status;
  link.reason = reason || "";
  renderStage();
  if (status === "connected") {
    show(line, false);
    if (pendingBuy) sendBuy();
  } else if (status === "closed") {
    say(line, reason || t("watch.closed"), "error");
  } else if (status === "offline") {
    say(line, t("watch.offline"), "info");
  } else {
    // a short drop is repaired silently; a long one is worth a word
    quietTimer = setTimeout(() => say(line, t("watch.reconnecting"), "info"), SILENT_RECONNECT_MS);
  }
}

function onSnapshot(snapshot) {
  shop.loadSnapshot(snapshot);
  chat.load(snapshot.chat || []);
  orders.clear();
  for (const order of snapshot.orders || []) orderChanged(order);
  drawChanged(snapshot.draw ? timedDraw(snapshot.draw, draw) : null);
  if (snapshot.likes) likes.seen(snapshot.likes.total);
  if (snapshot.follow) follow = snapshot.follow;
  // the name this room shows: a guest whose name is taken here is "Ann 2"
  if (snapshot.you) $("#me-name").textContent = snapshot.you.display_name;
  renderAll();
}

function onEvent(type, data) {
  if (chatEvent(chat, type, data)) return;
  if (type === "likes") {
    likes.seen(data.total);
    return;
  }
  if (type === "followers") {
    follow = { ...follow, followers: data.followers };
    renderFollow();
    return;
  }
  if (shop.apply(type, data)) {
    renderAll();
    return;
  }
  if (ORDER_EVENTS.has(type)) orderChanged(data);
  else if (type === "draw.started" || type === "draw.closed") drawChanged(timedDraw(data, draw));
  else if (type === "draw.entered" && draw && draw.id === data.draw_id) drawChanged({ ...draw, entered: true });
  else if (type === "draw.entrants" && withEntrants(draw, data)) drawChanged(withEntrants(draw, data));
  else if (type === "draw.won") prizeWon(data);
  else if (type === "user.muted" && data.user_id === me.user.id) say($("#chat-status"), t("chat.you_were_muted"), "error");
}

function renderAll() {
  $("#viewers").textContent = t("viewers", { count: shop.viewers, number: number(shop.viewers) });
  renderCard();
  renderBag();
  renderPay();
  renderDraw();
  renderOrders();
  renderFollow();
  likes.render();
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
  setupSheets();
  onLanguage(() => {
    renderAll();
    chat.redraw(); // the role badges are words too
  });
  renderAll();
  chatForm($("#chat-form"), $("#chat-status"), { send: (type, data) => room.send(type, data) });
  setupRename();
  setupFollow();
  everySecond(() => {
    watchForStall();
    renderOffer();
    renderProduct();
    renderPay();
    if (draw) renderDraw();
    if (claim) renderClaim();
  });
  me = await viewerSession();
  connect();
  await checkout.loadSavedDetails();
}

main().catch((error) => say($("#connection"), errorText(error), "error"));
