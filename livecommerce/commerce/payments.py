"""Payments: a Stripe PaymentIntent per order, signed webhooks applied once, refunds.

- Every Stripe call carries an idempotency key derived from the order, so a retried call
  never creates a second PaymentIntent or refund. Amount and currency come from the order row.
- A webhook is verified with STRIPE_WEBHOOK_SECRET, recorded in `payment_events` by its id and
  applied in the same transaction, so replays and duplicates do nothing. Each order status
  moves only forward (the state machine in `lifecycle`), which makes any arrival order safe: a
  `payment_failed` after a success, or a success after a refund, changes nothing.
- A success for an order whose reservation already expired or was cancelled takes the units
  again if the sale (or the SKU's free stock) still has them and the buyer's units in the sale
  stay within its per-buyer limit; otherwise the payment is marked `refund_due` and refunded
  automatically (retried until Stripe confirms; at once in test mode).
- Without Stripe keys, a clearly labelled test mode confirms orders locally, with no network.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import stripe
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal
from livecommerce.commerce import ledger, lifecycle, order_log
from livecommerce.commerce.closing import close_orders
from livecommerce.commerce.mail_outbox import MailOutbox
from livecommerce.commerce.order_log import SYSTEM_ACTOR, Change
from livecommerce.commerce.order_views import ORDER_COLUMNS, ORDER_JOINS, read_order
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.receipts import RECEIPT, REFUND
from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.http import parse

log = logging.getLogger(__name__)

TEST_PROVIDER = "test"
STRIPE_PROVIDER = "stripe"
REFUND_RETRY_INTERVAL_S = 5.0
APPLIED_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded")
MAX_STRIPE_AMOUNT = 10**12  # far above any charge Stripe accepts, well inside bigint

ORDER_FOR_UPDATE = text(
    f"SELECT {ORDER_COLUMNS}, o.merchant_id, o.sale_id FROM orders o {ORDER_JOINS} "
    "WHERE o.id = :id FOR UPDATE OF o"
)
SALE_LIMIT_FOR_UPDATE = text("SELECT per_user_limit FROM flash_sales WHERE id = :id FOR UPDATE")
PAYMENT_OF_ORDER_SQL = (
    "SELECT id, provider, provider_ref, status, amount_minor, currency FROM payments "
    "WHERE order_id = :order ORDER BY id DESC LIMIT 1"
)
PAYMENT_OF_ORDER = text(PAYMENT_OF_ORDER_SQL)
PAYMENT_TO_REFUND = text(
    "SELECT id, provider, provider_ref, status, amount_minor, amount_refunded_minor FROM payments "
    "WHERE order_id = :order AND status IN ('succeeded', 'refunded') "
    "ORDER BY id DESC LIMIT 1 FOR UPDATE"
)


class EventObject(BaseModel):
    """The fields of a PaymentIntent or Charge that an event is applied by; the rest is kept as sent."""

    model_config = ConfigDict(extra="allow", strict=True)
    id: str | None = Field(None, max_length=200)
    payment_intent: str | None = Field(None, max_length=200)
    amount: int = Field(0, ge=0, le=MAX_STRIPE_AMOUNT)
    amount_received: int | None = Field(None, ge=0, le=MAX_STRIPE_AMOUNT)
    amount_refunded: int = Field(0, ge=0, le=MAX_STRIPE_AMOUNT)
    currency: str = Field("", max_length=10)


class EventData(BaseModel):
    object: dict[str, Any]


class StripeEvent(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=100)
    data: EventData


def read_event(payload: bytes) -> tuple[StripeEvent, EventObject | None]:
    """A verified webhook body as a Stripe event, with its object read when the event is one
    that is applied; `invalid` when it is not a usable event.

    A signed but malformed event is refused here with a 400 (and logged) rather than failing
    deeper with a 500 on every one of Stripe's retries.
    """
    try:
        event = parse(StripeEvent, orjson.loads(payload))
        obj = parse(EventObject, event.data.object) if event.type in APPLIED_EVENTS else None
    except orjson.JSONDecodeError:
        log.warning("a signed Stripe webhook is not JSON; refused")
        raise AppError("invalid_json", "the payload is not a Stripe event") from None
    except AppError as exc:
        log.warning("a signed Stripe webhook is not a usable event (%s); refused", exc.message)
        raise
    return event, obj


@dataclass(slots=True)
class Applied:
    """What applying one payment fact changed: orders to announce, a refund still owed."""

    orders: list[dict[str, Any]]
    refund_due: int | None = None


async def _retake_units(conn: AsyncConnection, order: Any) -> bool:
    """A late payment's units, counted within the buyer's limit in its sale: from the sale if
    still open and stocked, else from free stock. Nothing is taken (and False is returned) when
    no unit is left or the buyer already holds their limit, e.g. through a later order."""
    if order.sale_id is None:
        return await ledger.sell_free(conn, order.sku_id, order.quantity)
    attempt = await conn.begin_nested()
    if await _retake_sale_units(conn, order):
        await attempt.commit()
        return True
    await attempt.rollback()
    return False


async def _retake_sale_units(conn: AsyncConnection, order: Any) -> bool:
    # the sale row first, then holdings: the one lock order
    limit = await conn.scalar(SALE_LIMIT_FOR_UPDATE, {"id": order.sale_id})
    if await ledger.take_from_sale(conn, order.sale_id, order.quantity, for_taps=False) is not None:
        await ledger.sell(conn, order.sku_id, order.quantity)
    elif not await ledger.sell_free(conn, order.sku_id, order.quantity):
        return False
    return await ledger.add_held(conn, order.sale_id, {order.user_id: order.quantity}, limit=limit) == 1


async def mark_paid(conn: AsyncConnection, order_id: int, payment_id: int, mail: MailOutbox) -> Applied:
    """Apply a confirmed payment to its order, whatever state the order is in by now: an order
    paid once already (shipped, cancelled and refunded since, ...) is not paid again. This is
    where every order becomes paid: its receipt is queued here, in the same transaction."""
    order = (await conn.execute(ORDER_FOR_UPDATE, {"id": order_id})).one_or_none()
    if order is None:
        return Applied([])
    status = str(order.status)
    if order.paid_at is not None or not lifecycle.allows("pay", status):
        return Applied([])
    if status == "reserved":
        await ledger.sell(conn, order.sku_id, order.quantity)
    elif not await _retake_units(conn, order):
        await conn.execute(
            text("UPDATE payments SET status = 'refund_due', updated_at = now() WHERE id = :id"),
            {"id": payment_id},
        )
        return Applied([], refund_due=payment_id)
    await conn.execute(
        text("UPDATE orders SET status = 'paid', paid_at = now(), closed_at = NULL WHERE id = :id"),
        {"id": order_id},
    )
    await conn.execute(
        text("UPDATE payments SET status = 'succeeded', updated_at = now() WHERE id = :id"),
        {"id": payment_id},
    )
    await order_log.record(conn, SYSTEM_ACTOR, [Change(order_id, "pay", status, "paid")])
    await mail.queue(conn, RECEIPT, order_id)
    return Applied([await read_order(conn, order_id)])


async def mark_refunded(
    conn: AsyncConnection, payment_id: int, amount_refunded: int, mail: MailOutbox
) -> Applied:
    """Record a refund the provider made; a full one closes the order (an unpaid one gives its
    units back) and queues the buyer's refund confirmation. A refund this server already
    recorded (a cancel, a return) changes nothing more.

    Units of a paid order stay sold: the goods may have left, and the operator restocks them.
    The order's row is locked before the payment's, the one lock order of every order change.
    """
    order_id = await conn.scalar(text("SELECT order_id FROM payments WHERE id = :id"), {"id": payment_id})
    if order_id is None:
        return Applied([])
    order = (await conn.execute(ORDER_FOR_UPDATE, {"id": order_id})).one()
    payment = (
        await conn.execute(
            text(
                "WITH before AS (SELECT status FROM payments WHERE id = :id) "
                "UPDATE payments SET amount_refunded_minor = GREATEST(amount_refunded_minor, :r), "
                "status = CASE WHEN GREATEST(amount_refunded_minor, :r) >= amount_minor THEN 'refunded' "
                "ELSE status END, updated_at = now() WHERE id = :id "
                "RETURNING status, amount_refunded_minor, (SELECT status FROM before) AS was"
            ),
            {"id": payment_id, "r": amount_refunded},
        )
    ).one()
    status = str(order.status)
    if (
        payment.status != "refunded"
        or payment.was == "refunded"
        or not lifecycle.allows("provider_refund", status)
    ):
        return Applied([])
    if status == "reserved":
        await close_orders(conn, "refunded", [order.id])
    else:
        await conn.execute(
            text("UPDATE orders SET status = 'refunded', closed_at = now() WHERE id = :id"), {"id": order.id}
        )
        await order_log.record(conn, SYSTEM_ACTOR, [Change(order.id, "provider_refund", status, "refunded")])
    await mail.queue(conn, REFUND, order.id, refunded_minor=payment.amount_refunded_minor)
    return Applied([await read_order(conn, order.id)])


class Payments:
    """Starts payments for buyers, applies provider events, refunds for operators."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        orders: OrderService,
        mail: MailOutbox,
    ) -> None:
        self._settings = settings
        self._mail = mail
        self._engine = engine
        self._sessions = sessions
        self._orders = orders
        self.test_mode = settings.payments_test_mode
        self._stripe: stripe.StripeClient | None = None
        self._http: stripe.AIOHTTPClient | None = None

    @property
    def stripe(self) -> stripe.StripeClient:
        if self._stripe is None:
            self._http = stripe.AIOHTTPClient()
            base = {"api": self._settings.stripe_api_base} if self._settings.stripe_api_base else None
            self._stripe = stripe.StripeClient(
                self._settings.stripe_secret_key,
                base_addresses=base,
                http_client=self._http,
                max_network_retries=2,
            )
        return self._stripe

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close_async()

    async def start(self, who: Principal, order_id: int) -> dict[str, Any]:
        """Begin paying for one's own reserved order that has the buyer's details (where to send
        it): a PaymentIntent (or the test mode)."""
        async with self._engine.connect() as conn:
            order = (
                await conn.execute(
                    text(
                        "SELECT id, user_id, status, amount_minor, currency, reserved_until > now() AS holding, "
                        "shipping IS NOT NULL AS has_details FROM orders WHERE id = :id"
                    ),
                    {"id": order_id},
                )
            ).one_or_none()
        if order is None or order.user_id != who.user_id:
            raise AppError("not_found", "no such order")
        if order.status != "reserved" or not order.holding:
            raise AppError(
                "not_payable", f"the order is {order.status if order.holding else 'past its reservation'}"
            )
        if not order.has_details:
            # every sale order is goods to send; a prize order carries its claim's address and
            # is never paid for
            raise AppError(
                "details_required",
                "give the buyer's name, phone and address first (PUT /api/orders/{id}/shipping)",
            )
        answer: dict[str, Any] = {
            "order_id": order_id,
            "amount_minor": order.amount_minor,
            "currency": order.currency,
        }
        if self.test_mode:
            await self._record_payment(
                order_id, TEST_PROVIDER, f"test_{order_id}", order.amount_minor, order.currency
            )
            return {
                **answer,
                "mode": "test",
                "notice": "TEST MODE: no money moves; confirm to mark the order paid",
            }
        try:
            intent = await self.stripe.v1.payment_intents.create_async(
                {
                    "amount": order.amount_minor,
                    "currency": order.currency.lower(),
                    "metadata": {"order_id": str(order_id)},
                    "automatic_payment_methods": {"enabled": True},
                },
                {"idempotency_key": f"order-{order_id}-intent"},
            )
        except stripe.StripeError as exc:
            log.warning("creating a PaymentIntent for order %s failed: %s", order_id, exc)
            raise AppError(
                "payment_provider_error", "the payment provider did not answer; try again"
            ) from None
        await self._record_payment(order_id, STRIPE_PROVIDER, intent.id, order.amount_minor, order.currency)
        return {
            **answer,
            "mode": "stripe",
            "payment_intent": intent.id,
            "client_secret": intent.client_secret,
            "publishable_key": self._settings.stripe_publishable_key,
        }

    async def _record_payment(
        self, order_id: int, provider: str, ref: str, amount: int, currency: str
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO payments (order_id, provider, provider_ref, status, amount_minor, currency) "
                    "VALUES (:order, :provider, :ref, 'pending', :amount, :currency) "
                    "ON CONFLICT (provider_ref) DO NOTHING"
                ),
                {"order": order_id, "provider": provider, "ref": ref, "amount": amount, "currency": currency},
            )

    async def confirm_test(self, who: Principal, order_id: int) -> dict[str, Any]:
        """Test mode only: the buyer's page confirms the payment locally."""
        if not self.test_mode:
            raise AppError("forbidden", "test payments are off: Stripe is configured")
        async with self._engine.begin() as conn:
            owner = await conn.scalar(text("SELECT user_id FROM orders WHERE id = :id"), {"id": order_id})
            payment = (await conn.execute(PAYMENT_OF_ORDER, {"order": order_id})).one_or_none()
            if owner != who.user_id or payment is None or payment.provider != TEST_PROVIDER:
                raise AppError("not_found", "no test payment started for this order")
            applied = await mark_paid(conn, order_id, payment.id, self._mail)
            if applied.refund_due is not None:
                # no money moved: the refused late payment is refunded on the spot
                applied = await mark_refunded(conn, applied.refund_due, payment.amount_minor, self._mail)
            order = await read_order(conn, order_id)
        self._announce(applied)
        if order["status"] != "paid":
            raise AppError("not_payable", f"the order is {order['status']}")
        return order

    async def webhook(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Verify and apply one Stripe event; a replay or duplicate is acknowledged and ignored."""
        if self.test_mode:
            raise AppError("not_found", "Stripe is not configured")
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, self._settings.stripe_webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
        except stripe.SignatureVerificationError:
            raise AppError(
                "invalid_signature", "the Stripe-Signature header does not match the payload"
            ) from None
        except ValueError:
            raise AppError("invalid_json", "the payload is not a Stripe event") from None
        event, obj = read_event(payload)
        event_id, type_ = event.id, event.type
        ref = None if obj is None else obj.payment_intent if type_.startswith("charge.") else obj.id
        async with self._engine.begin() as conn:
            fresh = await conn.scalar(
                text(
                    "INSERT INTO payment_events (id, type, payment_ref, payload) VALUES (:id, :type, :ref, "
                    "CAST(:payload AS jsonb)) ON CONFLICT (id) DO NOTHING RETURNING true"
                ),
                {"id": event_id, "type": type_, "ref": ref, "payload": payload.decode()},
            )
            if not fresh:
                return {"received": True, "duplicate": True}
            applied = await self._apply(conn, type_, obj, ref)
        self._announce(applied)
        if applied.refund_due is not None:
            await self._refund_due(applied.refund_due)
        return {"received": True}

    async def _apply(
        self, conn: AsyncConnection, type_: str, obj: EventObject | None, ref: str | None
    ) -> Applied:
        if obj is None or ref is None:
            return Applied([])
        payment = (
            await conn.execute(
                text(
                    "SELECT id, order_id, amount_minor, currency, status FROM payments WHERE provider_ref = :ref"
                ),
                {"ref": ref},
            )
        ).one_or_none()
        if payment is None:
            log.warning("Stripe event %s for unknown PaymentIntent %s ignored", type_, ref)
            return Applied([])
        if type_ == "charge.refunded":
            return await mark_refunded(conn, payment.id, obj.amount_refunded, self._mail)
        if type_ == "payment_intent.payment_failed":
            await conn.execute(
                text(
                    "UPDATE payments SET status = 'failed', updated_at = now() WHERE id = :id AND status = 'pending'"
                ),
                {"id": payment.id},
            )
            return Applied([])
        received = obj.amount_received if obj.amount_received is not None else obj.amount
        if received != payment.amount_minor or obj.currency.upper() != payment.currency.upper():
            log.error("PaymentIntent %s paid an amount that does not match order %s", ref, payment.order_id)
            await conn.execute(
                text("UPDATE payments SET status = 'refund_due', updated_at = now() WHERE id = :id"),
                {"id": payment.id},
            )
            return Applied([], refund_due=payment.id)
        return await mark_paid(conn, payment.order_id, payment.id, self._mail)

    async def _refund_due(self, payment_id: int) -> None:
        """Refund a payment that cannot keep its order; safe to call again (idempotency key)."""
        async with self._engine.connect() as conn:
            payment = (
                await conn.execute(
                    text(
                        "SELECT provider_ref, amount_minor FROM payments WHERE id = :id AND status = 'refund_due'"
                    ),
                    {"id": payment_id},
                )
            ).one_or_none()
        if payment is None:
            return
        try:
            await self.stripe.v1.refunds.create_async(
                {"payment_intent": payment.provider_ref, "metadata": {"reason": "order_unavailable"}},
                {"idempotency_key": f"payment-{payment_id}-refund"},
            )
        except stripe.StripeError as exc:
            log.warning("automatic refund of payment %s failed (will retry): %s", payment_id, exc)
            return
        async with self._engine.begin() as conn:
            applied = await mark_refunded(conn, payment_id, payment.amount_minor, self._mail)
        self._announce(applied)

    async def refund_in(self, conn: AsyncConnection, order: Any, reason: str) -> int:
        """Refund what is left of the order's payment, inside the caller's transaction, which
        holds the order's row lock (so one refund of an order runs at a time, and a second finds
        nothing left); returns the amount. The provider's call carries one idempotency key per
        order and the amount not yet refunded, so neither a retry nor a race refunds twice or
        more than was paid. `order` is the locked row (`id`, `amount_minor`); a free order (a
        prize) has nothing to refund. The buyer's refund confirmation is queued with it."""
        order_id = order.id
        if order.amount_minor == 0:
            return 0
        payment = (await conn.execute(PAYMENT_TO_REFUND, {"order": order_id})).one_or_none()
        due = 0 if payment is None else payment.amount_minor - payment.amount_refunded_minor
        if payment is None or payment.status != "succeeded" or due <= 0:
            raise AppError("not_refundable", "the order has no payment left to refund")
        if payment.provider == STRIPE_PROVIDER:
            try:
                await self.stripe.v1.refunds.create_async(
                    {
                        "payment_intent": payment.provider_ref,
                        "amount": due,
                        "metadata": {"order_id": str(order_id), "reason": reason[:500]},
                    },
                    {"idempotency_key": f"order-{order_id}-refund"},
                )
            except stripe.StripeError as exc:
                log.warning("refund of order %s failed: %s", order_id, exc)
                raise AppError("payment_provider_error", "the payment provider refused the refund") from None
        await conn.execute(
            text(
                "UPDATE payments SET amount_refunded_minor = amount_minor, status = 'refunded', "
                "updated_at = now() WHERE id = :id"
            ),
            {"id": payment.id},
        )
        await self._mail.queue(conn, REFUND, order_id, refunded_minor=due)
        return due

    def _announce(self, applied: Applied) -> None:
        for order in applied.orders:
            if order["sale_id"] is not None:
                # a late payment may have taken its units back from the sale; if nothing
                # changed, the stock read finds a version already sent and sends nothing
                self._orders.events.stock_changed(order["sale_id"])
        self._orders.events.orders(applied.orders)

    async def run_refunds(self) -> None:
        """Retry refunds that are owed (late payments without stock, mismatched amounts)."""
        if self.test_mode:
            return
        while True:
            try:
                async with self._engine.connect() as conn:
                    due = list(
                        await conn.scalars(text("SELECT id FROM payments WHERE status = 'refund_due'"))
                    )
                for payment_id in due:
                    await self._refund_due(payment_id)
            except Exception:
                log.exception("refund retry failed")
            await asyncio.sleep(REFUND_RETRY_INTERVAL_S)
