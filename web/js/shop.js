// What a room is selling right now, kept from the join snapshot and the room's events:
// the pinned product card, the live's bag (each SKU's free stock kept current by `sku.stock`), the
// open flash sale of each SKU, and whether the stream is live.

import { t } from "./i18n.js";
import { h } from "./ui.js";

const SALE_EVENTS = new Set(["sale.scheduled", "sale.live", "sale.sold_out", "sale.ended", "sale.restocked", "sale.repriced", "sale.updated"]);

// A sale view with its start and end turned into this browser's clock (the server sends seconds left).
function timed(sale) {
  const now = Date.now();
  return { ...sale, startsAtMs: now + sale.starts_in_s * 1000, endsAtMs: now + sale.ends_in_s * 1000 };
}

// The anchor's and operator's button that puts a product in the live's bag or takes it out (a
// pinned product stays in the bag until it is unpinned). `send(type, data)` sends the room command.
export function bagButton(product, inBag, pinned, send) {
  const name = product.name || product.product;
  if (!inBag) {
    return h("button", { type: "button", text: t("console.bag_add"), "aria-label": `${t("console.bag_add")}: ${name}`,
      onclick: () => send("bag.add", { product_id: product.product_id }) });
  }
  return h("button", { type: "button", text: t("console.bag_remove"), "aria-label": `${t("console.bag_remove")}: ${name}`,
    disabled: pinned, onclick: () => send("bag.remove", { product_id: product.product_id }) });
}

// A card's variants as the options of `select`, the one chosen kept while it is still offered.
export function skuChoices(select, skus) {
  const choices = skus.map((s) => String(s.sku_id));
  if ([...select.options].map((o) => o.value).join() === choices.join()) return;
  const previous = select.value;
  select.replaceChildren(...skus.map((s) => h("option", { value: s.sku_id, text: s.name })));
  if (choices.includes(previous)) select.value = previous;
}

export class Shop {
  constructor() {
    this.card = null;
    this.bag = [];
    this.sales = new Map();
    this.versions = new Map();
    this.free = new Map(); // sku id -> { available, version }: the freshest free stock heard of
    this.live = false;
    this.viewers = 0;
  }

  loadSnapshot(snapshot) {
    this.card = snapshot.card || null;
    this.bag = snapshot.bag || [];
    this.sales.clear();
    this.versions.clear();
    this.free.clear();
    this.keepFreshest();
    for (const sale of snapshot.sales || []) {
      this.sales.set(sale.sku_id, timed(sale));
      this.versions.set(sale.sale_id, sale.version);
    }
    this.live = (snapshot.room && snapshot.room.status) === "live";
    this.viewers = snapshot.viewers || 0;
  }

  // Apply one room event; true when it changed what the shop shows.
  apply(type, data) {
    if (type === "card.pinned") {
      this.card = data.card;
      this.keepFreshest();
    } else if (type === "bag.updated") {
      this.bag = data.products;
      this.keepFreshest();
    } else if (type === "card.unpinned") this.card = null;
    else if (type === "sku.stock") return this.freeStock(data);
    else if ((SALE_EVENTS.has(type) || type === "stock") && this.stale(data)) return false;
    else if (SALE_EVENTS.has(type)) {
      if (data.state === "ended") this.sales.delete(data.sku_id);
      else this.sales.set(data.sku_id, timed(data));
    } else if (type === "stock") this.stock(data);
    else if (type === "stream.live") this.live = true;
    else if (type === "stream.ended") this.live = false;
    else if (type === "presence") this.viewers = data.viewers;
    else return false;
    return true;
  }

  // Servers may deliver a sale's events out of order: keep the highest version of each sale.
  stale(data) {
    if (this.versions.get(data.sale_id) > data.version) return true;
    this.versions.set(data.sale_id, data.version);
    return false;
  }

  stock(data) {
    const sale = this.sales.get(data.sku_id);
    if (sale && sale.sale_id === data.sale_id) {
      sale.available = data.available;
      sale.allocated = data.allocated;
      sale.state = data.state;
      if (data.state === "ended") this.sales.delete(data.sku_id);
    }
  }

  // A SKU's free stock changed (events may come out of order: the highest version wins).
  freeStock(data) {
    const known = this.free.get(data.sku_id);
    if (known && known.version >= data.version) return false;
    this.free.set(data.sku_id, { available: data.available, version: data.version });
    this.keepFreshest();
    return true;
  }

  // Every card's SKU shows the freshest free stock known: a card read before the last event
  // (the bag's cards are cached a moment) does not bring an older count back.
  keepFreshest() {
    for (const product of [this.card, ...this.bag]) {
      for (const sku of (product && product.skus) || []) {
        const known = this.free.get(sku.sku_id);
        if (!known || known.version < sku.version) {
          this.free.set(sku.sku_id, { available: sku.available, version: sku.version });
        } else {
          sku.available = known.available;
          sku.version = known.version;
        }
      }
    }
  }

  saleFor(skuId) {
    return this.sales.get(skuId) || null;
  }

  // Units a viewer can still get: the sale's stock while one runs, else the SKU's free stock.
  available(sku) {
    const sale = this.saleFor(sku.sku_id);
    return sale ? sale.available : sku.available;
  }
}
