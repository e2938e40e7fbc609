// The "start a flash sale" form, the same in the studio and the console: it shows the chosen
// SKU's list price and free stock next to what the operator types, and lets the merchant keep
// the sale open after the live ends (by default the live's end ends it).

import { api } from "./api.js";
import { money, number, parseMoney } from "./format.js";
import { errorText, t } from "./i18n.js";
import { busy, h, say } from "./ui.js";

function field(label, input, hint) {
  return h("label", {}, h("span", { text: label }), input, hint);
}

// A form for a sale of one of `skus` (rows of GET /api/inventory); `onStarted(view)` after it opens.
export function saleForm({ roomId, token, skus, result, onStarted, onCancel }) {
  const product = skus[0].product;
  const sku = h("select", { name: "sku" }, skus.map((s) => h("option", { value: s.sku_id, text: s.name })));
  const facts = h("p", { class: "sale-facts" });
  const price = h("input", { name: "price", inputmode: "decimal", required: true, autocomplete: "off" });
  const units = h("input", { name: "units", type: "number", min: "1", value: "10", required: true });
  const limit = h("input", { name: "limit", type: "number", min: "1", value: "1", required: true });
  const minutes = h("input", { name: "minutes", type: "number", min: "1", value: "5", required: true });
  const keepOpen = h("input", { name: "keep_open_after_live", type: "checkbox" });
  const chosenSku = () => skus.find((s) => String(s.sku_id) === sku.value) || skus[0];
  const showFacts = () => {
    const chosen = chosenSku();
    facts.textContent = t("sale.facts", { price: money(chosen.price_minor, chosen.currency), count: number(chosen.available) });
    price.placeholder = money(chosen.price_minor, chosen.currency);
    units.max = String(Math.max(1, chosen.available));
  };
  sku.addEventListener("change", showFacts);
  showFacts();
  const form = h("form", { class: "stack sale-form", "aria-label": t("sale.form_name", { product }) },
    h("h3", { text: t("sale.title", { product }) }),
    skus.length > 1 ? field(t("sale.option"), sku) : null,
    facts,
    field(t("sale.price"), price), field(t("sale.units"), units),
    field(t("sale.limit"), limit), field(t("sale.minutes"), minutes),
    h("label", { class: "check" }, keepOpen, h("span", { text: t("sale.keep_open") })),
    h("div", { class: "row" },
      h("button", { class: "primary", type: "submit", text: t("sale.start") }),
      h("button", { type: "button", text: t("common.cancel"), onclick: onCancel })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = chosenSku();
    const priceMinor = parseMoney(price.value, chosen.currency);
    if (priceMinor === null) {
      say(result, t("sale.price_help"), "error");
      price.focus();
      return;
    }
    try {
      const view = await busy(form, () => api("/api/sales", { method: "POST", token, body: {
        room_id: roomId, sku_id: chosen.sku_id, sale_price_minor: priceMinor,
        allocated: Number(units.value), per_user_limit: Number(limit.value),
        duration_s: Number(minutes.value) * 60, keep_open_after_live: keepOpen.checked,
      } }));
      say(result, t("sale.started", { product: chosen.product }), "ok");
      onStarted(view, chosen);
    } catch (error) {
      say(result, errorText(error), "error");
    }
  });
  queueMicrotask(() => price.focus());
  return form;
}
