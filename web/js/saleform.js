// The "start a flash sale" form, the same in the studio and the console.

import { api } from "./api.js";
import { money, parseMoney } from "./format.js";
import { busy, h, say } from "./ui.js";

function field(label, input) {
  return h("label", {}, label, input);
}

// A form for a sale of one of `skus` (rows of GET /api/inventory); `onStarted(view)` after it opens.
export function saleForm({ roomId, token, skus, result, onStarted, onCancel }) {
  const sku = h("select", { name: "sku" }, skus.map((s) =>
    h("option", { value: s.sku_id, text: `${s.name} · ${money(s.price_minor, s.currency)} · ${s.available} free` })));
  const price = h("input", { name: "price", inputmode: "decimal", required: true, autocomplete: "off" });
  const units = h("input", { name: "units", type: "number", min: "1", value: "10", required: true });
  const limit = h("input", { name: "limit", type: "number", min: "1", value: "1", required: true });
  const minutes = h("input", { name: "minutes", type: "number", min: "1", value: "5", required: true });
  const form = h("form", { class: "stack sale-form", "aria-label": `Flash sale of ${skus[0].product}` },
    h("h3", { text: `Flash sale: ${skus[0].product}` }),
    skus.length > 1 ? field("Option", sku) : null,
    field("Sale price", price), field("Units for the sale", units),
    field("Limit per viewer", limit), field("Duration (minutes)", minutes),
    h("button", { class: "primary", type: "submit", text: "Start sale" }),
    h("button", { type: "button", text: "Cancel", onclick: onCancel }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = skus.find((s) => String(s.sku_id) === sku.value) || skus[0];
    const priceMinor = parseMoney(price.value, chosen.currency);
    if (priceMinor === null) {
      say(result, "Write the sale price like 12.50.", "error");
      price.focus();
      return;
    }
    try {
      const view = await busy(form, () => api("/api/sales", { method: "POST", token, body: {
        room_id: roomId, sku_id: chosen.sku_id, sale_price_minor: priceMinor,
        allocated: Number(units.value), per_user_limit: Number(limit.value),
        duration_s: Number(minutes.value) * 60,
      } }));
      say(result, `The sale of ${chosen.product} is on.`, "ok");
      onStarted(view, chosen);
    } catch (error) {
      say(result, error.message, "error");
    }
  });
  queueMicrotask(() => price.focus());
  return form;
}
