// Prize draws as pages show them: the entry rule in words, the winners list, and the check
// that anyone can run on a closed draw (the seed matches its commitment, the winners follow).

import { api } from "./api.js";
import { verifyDraw } from "./draw-verify.js";
import { number } from "./format.js";
import { t } from "./i18n.js";
import { h } from "./ui.js";

export function ruleText(draw) {
  const rule = t(`draw.rule.${draw.rule}`, { keyword: draw.keyword });
  return draw.min_watch_seconds ? `${rule} ${t("draw.min_watch", { minutes: Math.ceil(draw.min_watch_seconds / 60) })}` : rule;
}

export function prizeText(draw) {
  return draw.prize.text || t("draw.a_prize");
}

// A running keyword draw's entrants so far: the count and, in the studio, the newest names.
export function entrantsText(draw, { names = false } = {}) {
  const count = t("draw.entrants", { count: draw.entrant_count || 0, number: number(draw.entrant_count || 0) });
  const latest = names && draw.latest_entrants && draw.latest_entrants.length ? draw.latest_entrants.join(", ") : "";
  return latest ? `${count} · ${t("draw.latest_entrants", { names: latest })}` : count;
}

// The draw with a `draw.entrants` event's count and names, if the event is about this draw.
export function withEntrants(draw, data) {
  if (!draw || draw.id !== data.draw_id || draw.state !== "open") return null;
  return { ...draw, entrant_count: data.entrant_count, latest_entrants: data.latest };
}

export function showWinners(list, draw) {
  list.replaceChildren(...draw.winners.map((w) => h("li", { text: w.display_name })));
}

// Fetch the published record and recompute it in this browser; fills `box` with the outcome.
export async function verifyInto(box, drawId) {
  box.replaceChildren(h("p", { text: t("verify.checking") }));
  const record = await api(`/api/draws/${drawId}`);
  const outcome = await verifyDraw(record);
  const lines = [
    h("p", { class: outcome.ok ? "ok" : "error",
      text: outcome.ok ? t("verify.ok") : t("verify.bad") }),
    ...outcome.mismatches.map((m) => h("p", { text: m })),
    h("dl", { class: "verify-lines" },
      h("dt", { text: t("verify.commitment") }), h("dd", { text: record.seed_commitment }),
      h("dt", { text: t("verify.seed") }), h("dd", { text: record.seed || "" }),
      h("dt", { text: t("verify.entrants", { count: record.entrant_count }) }), h("dd", { text: record.entrants_hash || "" })),
  ];
  box.replaceChildren(...lines);
}
