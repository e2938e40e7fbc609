// Prize draws as pages show them: the entry rule in words, the winners list, and the check
// that anyone can run on a closed draw (the seed matches its commitment, the winners follow).

import { api } from "./api.js";
import { verifyDraw } from "./draw-verify.js";
import { h } from "./ui.js";

export function ruleText(draw) {
  if (draw.rule === "keyword") return `Comment "${draw.keyword}" or tap Enter to take part.`;
  if (draw.rule === "ordered") return "Everyone who ordered during this stream takes part.";
  return "Everyone watching when it closes takes part.";
}

export function prizeText(draw) {
  return draw.prize.text || "A prize";
}

export function showWinners(list, draw) {
  list.replaceChildren(...draw.winners.map((w) => h("li", { text: w.display_name })));
}

// Fetch the published record and recompute it in this browser; fills `box` with the outcome.
export async function verifyInto(box, drawId) {
  box.replaceChildren(h("p", { text: "Checking…" }));
  const record = await api(`/api/draws/${drawId}`);
  const outcome = await verifyDraw(record);
  const lines = [
    h("p", { class: outcome.ok ? "ok" : "error",
      text: outcome.ok
        ? "Verified: the seed matches the commitment published before the draw, and it selects exactly these winners."
        : "This draw does not check out:" }),
    ...outcome.mismatches.map((m) => h("p", { text: m })),
    h("dl", { class: "verify-lines" },
      h("dt", { text: "Commitment (published at the start)" }), h("dd", { text: record.seed_commitment }),
      h("dt", { text: "Seed (revealed at the close)" }), h("dd", { text: record.seed || "" }),
      h("dt", { text: `Entrants (${record.entrant_count}), hash` }), h("dd", { text: record.entrants_hash || "" })),
  ];
  box.replaceChildren(...lines);
}
