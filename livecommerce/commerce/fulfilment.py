"""Orders after payment: cancel, refund, ship (one by one or from a tracking CSV file), deliver,
close, and the buyer's return requests with the operator's answer.

Every action takes the one path `_act`: lock the order's row, ask the state machine (`lifecycle`),
do the action's work (a refund, units back into stock, the parcel), set the status, record the
order event and the audit row, commit, then tell the buyer and the staff feed. Two actions on one
order wait for each other on the row lock, and the second is judged on the first one's result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize, may
from livecommerce.commerce import ledger, lifecycle, order_log
from livecommerce.commerce.lifecycle import BUYER, OPERATOR
from livecommerce.commerce.order_log import Actor, Change
from livecommerce.commerce.order_views import read_order
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.payments import Payments
from livecommerce.commerce.tracking import check_parcel, parse_tracking_csv
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import order_action_event

ORDER_TO_ACT_ON = text(
    "SELECT id, user_id, merchant_id, sku_id, quantity, amount_minor, status FROM orders "
    "WHERE id = :id FOR UPDATE"
)
SET_STATUS = text(
    "UPDATE orders SET status = CAST(:status AS order_status), "
    "closed_at = CASE WHEN CAST(:closes AS boolean) THEN now() ELSE closed_at END WHERE id = :id"
)
FINAL_STATUSES = frozenset({"cancelled", "refunded", "closed"})
MAX_CHANGES = 100

Work = Callable[[AsyncConnection, Row[Any]], Awaitable[dict[str, Any]]]
"""An action's own writes, in its transaction; returns what the order event records about them."""


def _reason(reason: str, field: str = "reason") -> str:
    reason = reason.strip()
    if not reason:
        raise AppError("invalid", f"{field}: say why, in a few words")
    return reason


class OrderLifecycle:
    """The actions of buyers and operators on orders, and the views they read them through."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        orders: OrderService,
        payments: Payments,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._orders = orders
        self._payments = payments

    # -- buyers ------------------------------------------------------------------------------

    async def cancel(self, who: Principal, order_id: int) -> dict[str, Any]:
        """Cancel before the order ships: an unpaid one gives its units back to its sale; a paid
        one is refunded in full and its units go back into stock."""
        for _ in range(2):  # the order may be paid between the look and the cancel: look again
            if await self._status(order_id) != "reserved":
                return await self._act(who, order_id, "cancel", "", self._refund_and_restock)
            try:
                await self._orders.cancel(who, order_id)
            except AppError as exc:
                if exc.code != "not_cancellable":
                    raise
                continue
            async with self._engine.connect() as conn:
                return await _with_last_event(conn, order_id)
        raise AppError("conflict", "the order changed meanwhile; try again")

    async def request_return(self, who: Principal, order_id: int, reason: str) -> dict[str, Any]:
        return await self._act(who, order_id, "request_return", _reason(reason))

    async def changes(self, who: Principal, after: int | None) -> dict[str, Any]:
        """The buyer's order events after `after` and those orders as they are now; without
        `after`, only the point to ask from next."""
        async with self._engine.connect() as conn:
            if after is None:
                return {
                    "events": [],
                    "orders": [],
                    "last_event_id": await order_log.latest_event_id(conn, who.user_id),
                }
            events = await order_log.buyer_changes(conn, who.user_id, after, MAX_CHANGES)
            order_ids = sorted({event["order_id"] for event in events})
            orders = [await read_order(conn, order_id) for order_id in order_ids]
        return {
            "events": events,
            "orders": orders,
            "last_event_id": events[-1]["event_id"] if events else after,
        }

    async def detail(self, who: Principal, order_id: int) -> dict[str, Any]:
        """One order with its parcel and history, for its buyer or the merchant's staff."""
        async with self._engine.connect() as conn:
            owner = (
                await conn.execute(
                    text("SELECT user_id, merchant_id FROM orders WHERE id = :id"), {"id": order_id}
                )
            ).one_or_none()
            if owner is None or (
                owner.user_id != who.user_id and not may(who, "sales.read", owner.merchant_id)
            ):
                raise AppError("not_found", "no such order")
            order = await read_order(conn, order_id)
            order["events"] = await order_log.history(conn, order_id)
        return order

    # -- operators ---------------------------------------------------------------------------

    async def refund(self, who: Principal, order_id: int, reason: str) -> dict[str, Any]:
        """Refund a paid order in full; its units stay sold (the goods may have left)."""

        async def refund(conn: AsyncConnection, order: Row[Any]) -> dict[str, Any]:
            return {"amount_minor": await self._payments.refund_in(conn, order, reason)}

        return await self._act(who, order_id, "refund", reason.strip(), refund)

    async def ship(self, who: Principal, order_id: int, carrier: str, tracking_number: str) -> dict[str, Any]:
        carrier, tracking_number = check_parcel(carrier, tracking_number)

        async def record_parcel(conn: AsyncConnection, order: Row[Any]) -> dict[str, Any]:
            await conn.execute(
                text(
                    "INSERT INTO shipments (order_id, carrier, tracking_number, shipped_by) "
                    "VALUES (:order, :carrier, :tracking, :by)"
                ),
                {"order": order.id, "carrier": carrier, "tracking": tracking_number, "by": who.user_id},
            )
            return {"carrier": carrier, "tracking_number": tracking_number}

        return await self._act(who, order_id, "ship", "", record_parcel)

    async def import_tracking(self, who: Principal, data: bytes) -> dict[str, Any]:
        """Ship the orders a tracking CSV file names, each row on its own: a row that cannot
        apply (bad cell, unknown order, not paid, shipped already) changes nothing and says why."""
        authorize(who, "order.manage")
        results: list[dict[str, Any]] = []
        for row in parse_tracking_csv(data):
            result: dict[str, Any] = {"line": row.line, "order_id": row.order_id}
            try:
                if row.error is not None:
                    raise row.error
                assert row.order_id is not None  # a row without error names its order
                order = await self.ship(who, row.order_id, row.carrier, row.tracking_number)
                result |= {"applied": True, "status": order["status"], "tracking_number": row.tracking_number}
            except AppError as exc:
                result |= {"applied": False, "error": exc.to_dict()}
            results.append(result)
        applied = sum(1 for result in results if result["applied"])
        return {"applied": applied, "failed": len(results) - applied, "rows": results}

    async def deliver(self, who: Principal, order_id: int) -> dict[str, Any]:
        async def delivered(conn: AsyncConnection, order: Row[Any]) -> dict[str, Any]:
            await conn.execute(
                text("UPDATE shipments SET delivered_at = now() WHERE order_id = :order"), {"order": order.id}
            )
            return {}

        return await self._act(who, order_id, "deliver", "", delivered)

    async def close(self, who: Principal, order_id: int) -> dict[str, Any]:
        return await self._act(who, order_id, "close", "")

    async def accept_return(
        self, who: Principal, order_id: int, *, restock: bool, reason: str
    ) -> dict[str, Any]:
        """Refund the order in full; the goods count back into stock only if `restock`."""

        async def accept(conn: AsyncConnection, order: Row[Any]) -> dict[str, Any]:
            amount = await self._payments.refund_in(conn, order, reason or "return accepted")
            if restock:
                await ledger.take_back(conn, order.sku_id, order.quantity)
            return {"amount_minor": amount, "restocked": restock}

        return await self._act(who, order_id, "accept_return", reason.strip(), accept)

    async def refuse_return(self, who: Principal, order_id: int, reason: str) -> dict[str, Any]:
        return await self._act(who, order_id, "refuse_return", _reason(reason))

    # -- the one path ------------------------------------------------------------------------

    async def _refund_and_restock(self, conn: AsyncConnection, order: Row[Any]) -> dict[str, Any]:
        """A paid order cancelled before shipping: the money goes back, and so do the goods."""
        amount = await self._payments.refund_in(conn, order, "cancelled before shipping")
        await ledger.take_back(conn, order.sku_id, order.quantity)
        return {"amount_minor": amount, "restocked": True}

    async def _status(self, order_id: int) -> str | None:
        async with self._engine.connect() as conn:
            status = await conn.scalar(text("SELECT status FROM orders WHERE id = :id"), {"id": order_id})
        return None if status is None else str(status)

    async def _act(
        self, who: Principal, order_id: int, action: str, reason: str, work: Work | None = None
    ) -> dict[str, Any]:
        async with self._sessions.begin() as session:
            conn = await session.connection()
            order = (await conn.execute(ORDER_TO_ACT_ON, {"id": order_id})).one_or_none()
            if order is None:
                raise AppError("not_found", "no such order")
            actor = _actor_kind(who, order, action)
            status = str(order.status)
            back_to = await order_log.asked_from(conn, order_id) if action == "refuse_return" else None
            target = lifecycle.transition(action, status, actor, back_to=back_to)
            details = await work(conn, order) if work is not None else {}
            await conn.execute(
                SET_STATUS, {"id": order_id, "status": target, "closes": target in FINAL_STATUSES}
            )
            await order_log.record(
                conn, Actor.of(who), [Change(order_id, action, status, target, reason, details)]
            )
            if actor == OPERATOR:
                await audit(
                    session,
                    who,
                    f"order.{action}",
                    merchant_id=order.merchant_id,
                    target_type="order",
                    target_id=order_id,
                    details={"reason": reason, **details},
                )
            view = await _with_last_event(conn, order_id)
        self._orders.events.orders([view], order_action_event(action))
        return view


async def _with_last_event(conn: AsyncConnection, order_id: int) -> dict[str, Any]:
    """The order's view, with the event that just changed it."""
    view = await read_order(conn, order_id)
    view["event"] = (await order_log.history(conn, order_id))[-1]
    return view


def _actor_kind(who: Principal, order: Row[Any], action: str) -> str:
    """Whether `who` acts on the order as its buyer or as the merchant's operator: `forbidden`
    for the merchant's other staff, `not_found` for everyone else (the order stays invisible)."""
    actors = lifecycle.TRANSITIONS[action].actors
    own = order.user_id == who.user_id
    if own and BUYER in actors:
        return BUYER
    if may(who, "order.manage", order.merchant_id):
        return OPERATOR
    if own:
        return BUYER
    if may(who, "sales.read", order.merchant_id):
        raise AppError("forbidden", f"the {who.role.value} role may not {action.replace('_', ' ')} orders")
    raise AppError("not_found", "no such order")
