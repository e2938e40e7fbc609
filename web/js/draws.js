// Prize draws as pages show them: the entry rule in words, the winners list, and the check
// that anyone can run on a closed draw (the seed matches its commitment, the winners follow).

import { api } from "./api.js";
import { verifyDraw } from "./draw-verify.js";
import { t } from "./i18n.js";
import { h } from "./ui.js";

export function ruleText(draw) {
  const rule = t(`draw.rule.${draw.rule}`, { keyword: draw.keyword });
  return draw.min_watch_seconds ? `${rule} ${t("draw.min_watch", { minutes: Math.ceil(draw.min_watch_seconds / 60) })}` : rule;
}

export function prizeText(draw) {
  return draw.prize.text || t("draw.a_prize");
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
