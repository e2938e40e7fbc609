// The shoppable replay: a recording played with hls.js, the live's product cards, flash sales and
// draws on a timeline at the moments they happened, the product shown at any moment offered at
// its list price (on the room's watch page), and clips; staff mark new clips here.
// `?t=<seconds>` starts at that moment (a clip's link).

import { api, loadSession } from "./api.js";
import { money } from "./format.js";
import { playHls } from "./hls-play.js";
import { errorText, onLanguage, t } from "./i18n.js";
import { $, h, say, show } from "./ui.js";

const SESSION = Number(document.body.dataset.sessionId);
const STAFF_SCOPE = "staff";
const video = $("#video");
let replay = null;

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
  section.dataset.productId = card ? card.product_id : "";
  show(section, Boolean(card));
  if (card) {
    $("#card-name").textContent = card.name;
    const image = $("#card-image");
    show(image, Boolean(card.image_url));
    if (card.image_url) image.src = card.image_url;
    const sku = card.skus[0];
    $("#card-price").textContent = sku ? money(sku.price_minor, sku.currency) : "";
    $("#card-buy").href = replay.room.watch_url;
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
  video.addEventListener("timeupdate", renderNow);
  video.addEventListener("seeked", renderNow);
  renderTimeline();
  renderClips();
  renderNow();
  onLanguage(() => {
    renderTimeline();
    renderNow();
  });
}

main().catch((error) => say($("#replay-status"), errorText(error), "error"));
