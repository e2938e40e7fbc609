// The console's orders: the room's orders, filtered by state, each with what its state allows
// (cancel, refund, ship with carrier and tracking number, mark delivered, close, accept or refuse
// a return), the buyer's address beside a paid order's ship form for operators (each read is
// recorded by the server), and the tracking CSV import with what happened to each row.

import { money, orderItem, timeOfDay } from "./format.js";
import { errorText, t } from "./i18n.js";
import { $, busy, h, say } from "./ui.js";

const SHOWN = 200;

export class OrdersDesk {
  // `call(path, body, resultNode)`: the console's API call; `readsAddresses()`: whether this account may read buyers' addresses (operators only).
  constructor({ roomId, call, readsAddresses }) {
    this.roomId = roomId;
    this.call = call;
    this.readsAddresses = readsAddresses;
    this.orders = new Map();
    this.reasons = new Map(); // order id -> the buyer's return reason, once read
    this.addresses = new Map(); // order id -> where it goes, once an operator asked to see it
    this.filter = "";
    this.result = $("#orders-result");
    const picker = $("#orders-filter");
    picker.addEventListener("change", () => this.load(picker.value));
    $("#tracking-import").addEventListener("submit", (event) => {
      event.preventDefault();
      this.importTracking(event.target);
    });
  }

  // An order as the feed, a list or an action's answer tells it (later facts win).
  seen(order, at) {
    const known = this.orders.get(order.order_id) || { created_at: at };
    this.orders.set(order.order_id, { ...known, ...order });
    this.render();
  }

  reset(orders) {
    this.orders.clear();
    for (const order of orders) this.seen(order);
    this.render();
  }

  async load(state) {
    this.filter = state;
    const query = state ? `?status=${encodeURIComponent(state)}` : "";
    try {
      const { orders } = await this.call(`/api/rooms/${this.roomId}/orders${query}`, undefined, this.result);
      for (const order of orders) this.seen(order);
      this.render();
    } catch {
      // said by call()
    }
  }

  render() {
    const rows = [...this.orders.values()]
      .filter((order) => !this.filter || order.status === this.filter)
      .sort((a, b) => b.order_id - a.order_id)
      .slice(0, SHOWN);
    $("#orders tbody").replaceChildren(...rows.map((order) => this.row(order)));
  }

  row(order) {
    const parcel = order.shipment ? `${order.shipment.carrier} ${order.shipment.tracking_number}` : "";
    return h("tr", { dataset: { orderId: order.order_id, status: order.status } },
      h("td", { text: order.order_id }), h("td", { text: order.created_at ? timeOfDay(order.created_at) : "" }),
      h("td", { text: order.buyer }), h("td", { class: "item", text: orderItem(order) }),
      h("td", { text: money(order.amount_minor, order.currency) }),
      h("td", { class: "status", dataset: { status: order.status }, text: t(`order.${order.status}`) }),
      h("td", { class: "tracking", text: parcel }),
      h("td", { class: "actions" }, this.actions(order)));
  }

  actions(order) {
    const id = order.order_id;
    const button = (text, label, onclick, tone) =>
      h("button", { type: "button", class: tone, text, "aria-label": label, onclick });
    switch (order.status) {
      case "reserved":
        return button(t("common.cancel"), t("console.cancel_named", { id }),
          () => this.act(order, "cancel", {}, t("console.confirm_cancel", { id, buyer: order.buyer })));
      case "paid":
        return [this.shipTo(order), this.shipForm(order),
          button(t("console.refund"), t("console.refund_named", { id }),
            () => this.act(order, "refund", { reason: "refunded by the shop" }, t("console.confirm_refund", { id, buyer: order.buyer })))];
      case "shipped":
        return button(t("console.mark_delivered"), t("console.mark_delivered_named", { id }),
          () => this.act(order, "deliver", undefined));
      case "delivered":
        return button(t("console.close_order"), t("console.close_order_named", { id }),
          () => this.act(order, "close", undefined, t("console.confirm_close", { id, buyer: order.buyer })));
      case "return_requested":
        return this.returnForm(order);
      default:
        return null;
    }
  }

  shipForm(order) {
    const id = order.order_id;
    const form = h("form", { class: "ship-form", "aria-label": t("console.ship_named", { id }) },
      h("input", { name: "carrier", required: true, maxlength: 64, autocomplete: "off", placeholder: t("console.carrier"), "aria-label": t("console.carrier") }),
      h("input", { name: "tracking_number", required: true, maxlength: 64, autocomplete: "off", placeholder: t("console.tracking_number"), "aria-label": t("console.tracking_number") }),
      h("button", { type: "submit", class: "primary", text: t("console.ship") }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(form, () => this.act(order, "ship", { carrier: form.elements.carrier.value, tracking_number: form.elements.tracking_number.value }));
    });
    return form;
  }

  // The buyer's name, phone and address once read; until then, for operators, the button that
  // reads them (one recorded view per press, so they are not read before someone asks).
  shipTo(order) {
    const id = order.order_id;
    if (this.addresses.has(id)) {
      const to = this.addresses.get(id);
      if (!to) return h("p", { class: "ship-to muted", text: t("console.no_address") });
      const place = [to.line1, to.line2, to.city, to.region, to.postal_code, to.country].filter(Boolean).join(", ");
      return h("address", { class: "ship-to", "aria-label": t("console.ship_to_named", { id }) },
        h("strong", { text: to.name }), " ", h("span", { class: "phone", text: to.phone }),
        h("span", { class: "place", text: place }));
    }
    if (!this.readsAddresses()) return null;
    return h("button", { type: "button", class: "show-address", text: t("console.show_address"),
      "aria-label": t("console.show_address_named", { id }), onclick: () => this.readAddress(id) });
  }

  async readAddress(id) {
    try {
      const { shipping } = await this.call(`/api/orders/${id}/shipping`, undefined, this.result);
      this.addresses.set(id, shipping);
      this.render();
    } catch {
      // said by call()
    }
  }

  returnForm(order) {
    const id = order.order_id;
    const reason = h("p", { class: "return-reason", text: this.reasons.get(id) || "" });
    if (!this.reasons.has(id)) this.readReason(id);
    const form = h("form", { class: "return-form", "aria-label": t("console.return_named", { id }) }, reason,
      h("label", {}, h("input", { type: "checkbox", name: "restock" }), " ", t("console.restock_returned")),
      h("button", { type: "submit", class: "primary", name: "accept", text: t("console.accept_return") }),
      h("input", { name: "refusal", maxlength: 500, autocomplete: "off", placeholder: t("console.refusal_reason"), "aria-label": t("console.refusal_reason") }),
      h("button", { type: "button", name: "refuse", text: t("console.refuse_return"),
        onclick: () => busy(form, () => this.act(order, "return/refuse", { reason: form.elements.refusal.value })) }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const restock = form.elements.restock.checked;
      busy(form, () => this.act(order, "return/accept", { restock }, t(restock ? "console.confirm_accept_restock" : "console.confirm_accept", { id, buyer: order.buyer })));
    });
    return form;
  }

  async readReason(id) {
    this.reasons.set(id, "");
    try {
      const { order } = await this.call(`/api/orders/${id}`, undefined, this.result);
      const asked = order.events.filter((e) => e.action === "request_return").pop();
      this.reasons.set(id, asked ? t("console.buyer_says", { reason: asked.reason }) : "");
      this.render();
    } catch {
      this.reasons.delete(id);
    }
  }

  async act(order, action, body, question) {
    if (question && !confirm(question)) return;
    try {
      const answer = await this.call(`/api/orders/${order.order_id}/${action}`, body ?? {}, this.result);
      this.seen(answer.order);
      say(this.result, t("console.order_now", { id: order.order_id, status: t(`order.${answer.order.status}`) }), "ok");
    } catch {
      // said by call()
    }
  }

  async importTracking(form) {
    const file = form.elements.file.files[0];
    const list = $("#import-results");
    if (!file) return;
    try {
      const answer = await busy(form, () =>
        this.call("/api/shipments/import", new Blob([file], { type: "text/csv" }), this.result));
      say(this.result, t("console.import_done", { applied: answer.applied, failed: answer.failed }), answer.failed ? "error" : "ok");
      list.replaceChildren(...answer.rows.map((row) => h("li", { dataset: { applied: String(row.applied) } },
        row.applied
          ? t("console.import_row_ok", { line: row.line, id: row.order_id })
          : t("console.import_row_failed", { line: row.line, reason: errorText(row.error) }))));
      await this.load(this.filter);
    } catch {
      // said by call()
    }
  }
}
