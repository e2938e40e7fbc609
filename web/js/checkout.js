// Checking out a reserved order, on the watch page and the replay: the buyer's details (filled in
// from those saved, remembered for next time if asked) put on the order, then payment (test mode
// confirms at once; Stripe mounts its payment element). The pay panel's elements go by their ids:
// #pay, #pay-summary, #pay-deadline, #pay-test-note, #checkout-form, #details-result,
// #stripe-element, #pay-button, #pay-result, #saved-details and #forget-details.

import { api, joinAsGuest, loadSession } from "./api.js";
import { countdown, money } from "./format.js";
import { errorText, language, t } from "./i18n.js";
import { $, h, say, show } from "./ui.js";

// the browser's viewer session, shared by the watch pages and the replays
export const SCOPE = "viewer";
const DETAIL_FIELDS = ["name", "phone", "email", "line1", "line2", "city", "region", "postal_code", "country"];

// Who buys: the viewer signed in on this browser, else a new guest with a name.
export async function viewerSession() {
  return loadSession(SCOPE) || joinAsGuest(SCOPE, t("watch.guest_name", { number: Math.floor(1000 + Math.random() * 9000) }));
}

function detailsFrom(form) {
  return Object.fromEntries(DETAIL_FIELDS.map((name) => [name, form.elements[name].value.trim()]));
}

function testMode() {
  return document.body.dataset.payments === "test";
}

function loadStripe() {
  if (window.Stripe) return Promise.resolve(window.Stripe);
  return new Promise((resolve, reject) => {
    const script = h("script", { src: "https://js.stripe.com/v3/" });
    script.addEventListener("load", () => resolve(window.Stripe));
    script.addEventListener("error", () => reject(new Error(t("pay.stripe_unavailable"))));
    document.head.append(script);
  });
}

export class Checkout {
  // `token()`: the buyer's token now; `orderById(id)`: an order as last heard of; `paid(order)`:
  // told of an order paid in test mode (Stripe's payments arrive as order events).
  constructor({ token, orderById, paid }) {
    this.token = token;
    this.orderById = orderById;
    this.paid = paid;
    this.form = $("#checkout-form");
    this.order = null; // the order the panel offers to pay now
    this.payingFor = null; // the last order shown, whose outcome stays on show
    this.stripe = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.pay();
    });
    $("#forget-details").addEventListener("click", () => this.forgetDetails());
  }

  // Show the panel for `order` (a reserved order still held), or the outcome of the last one.
  render(order) {
    this.order = order;
    const panel = $("#pay");
    if (!order) {
      show(panel, this.payingFor !== null);
      if (this.payingFor !== null) {
        const last = this.orderById(this.payingFor);
        const outcome = last && last.status === "paid" ? [t(testMode() ? "pay.paid_test" : "pay.paid"), "ok"]
          : [t("pay.expired"), "error"];
        say($("#pay-result"), ...outcome);
        $("#pay-button").hidden = true;
        show(this.form, false);
        $("#pay-deadline").textContent = "";
        show($("#pay-test-note"), false);
      }
      return;
    }
    if (this.payingFor !== order.order_id) {
      this.payingFor = order.order_id;
      $("#pay-button").hidden = false;
      show(this.form, true);
      say($("#details-result"), "");
      say($("#pay-result"), "");
      $("#stripe-element").replaceChildren();
    }
    show(panel, true);
    $("#pay-summary").textContent = t("pay.summary", { id: order.order_id, quantity: order.quantity,
      unit: money(order.unit_price_minor, order.currency), amount: money(order.amount_minor, order.currency) });
    $("#pay-deadline").textContent = t("pay.held", { time: countdown(order.reserved_until) });
    show($("#pay-test-note"), testMode());
    if (!this.stripe || this.stripe.orderId !== order.order_id) {
      $("#pay-button").textContent = t(testMode() ? "pay.pay_test" : "pay.pay", { amount: money(order.amount_minor, order.currency) });
    }
  }

  async pay() {
    const order = this.order;
    if (!order) return;
    const button = $("#pay-button");
    button.disabled = true;
    try {
      if (this.stripe && this.stripe.orderId === order.order_id) {
        await this.confirmStripe();
        return;
      }
      if (!(await this.shipTo(order))) return;
      const start = await api(`/api/orders/${order.order_id}/pay`, { method: "POST", token: this.token(), body: {} });
      if (start.mode === "test") {
        const confirmed = await api(`/api/orders/${order.order_id}/test-confirm`, { method: "POST", token: this.token(), body: {} });
        this.paid(confirmed.order);
      } else {
        this.stripe = await this.mountStripe(order.order_id, start);
        button.textContent = t("pay.confirm");
      }
    } catch (error) {
      say($("#pay-result"), errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  async mountStripe(orderId, start) {
    const Stripe = await loadStripe();
    const stripe = Stripe(start.publishable_key);
    const elements = stripe.elements({ clientSecret: start.client_secret });
    elements.create("payment").mount("#stripe-element");
    return { orderId, stripe, elements };
  }

  async confirmStripe() {
    const { stripe, elements } = this.stripe;
    const { error } = await stripe.confirmPayment({ elements, redirect: "if_required", confirmParams: { return_url: location.href } });
    if (error) throw error;
    say($("#pay-result"), t("pay.sent"), "info");
  }

  fillDetails(details) {
    for (const name of DETAIL_FIELDS) this.form.elements[name].value = details[name] || "";
  }

  // Put the details on the order; a refused field is marked and focused, its words said in place.
  async shipTo(order) {
    const remember = this.form.elements.remember.checked;
    for (const input of this.form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
    try {
      await api(`/api/orders/${order.order_id}/shipping`, { method: "PUT", token: this.token(),
        body: { details: detailsFrom(this.form), remember, language: language() } });
    } catch (error) {
      const field = error.details && this.form.elements[error.details.field];
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.focus();
      }
      say($("#details-result"), errorText(error), "error");
      return false;
    }
    say($("#details-result"), "");
    if (remember) show($("#saved-details"), true);
    return true;
  }

  // The buyer's saved details fill the form.
  async loadSavedDetails() {
    try {
      const { details } = await api("/api/me/details", { token: this.token() });
      if (details) this.fillDetails(details);
      show($("#saved-details"), Boolean(details));
    } catch {
      // an empty form is asked for instead
    }
  }

  async forgetDetails() {
    try {
      await api("/api/me/details", { method: "DELETE", token: this.token() });
      this.fillDetails({});
      show($("#saved-details"), false);
      say($("#pay-result"), t("details.forgotten"), "ok");
    } catch (error) {
      say($("#pay-result"), errorText(error), "error");
    }
  }
}
