"""Closing unpaid orders (cancelled, expired, refunded before payment): their units go back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from livecommerce.auth import Principal, audit, may
from livecommerce.commerce import ledger, order_log
from livecommerce.commerce.order_log import SYSTEM_ACTOR, Actor, Change
from livecommerce.commerce.order_views import ORDER_COLUMNS, ORDER_JOINS, order_view
from livecommerce.errors import AppError

ORDER_TO_CANCEL = text("SELECT id, user_id, merchant_id, status FROM orders WHERE id = :id FOR UPDATE")


@dataclass(slots=True)
class Closed:
    """Orders just closed (their views) and the sales their units went back to."""

    orders: list[dict[str, Any]]
    returned: ledger.Returned


CLOSING_ACTIONS = {"expired": "expire", "cancelled": "cancel", "refunded": "provider_refund"}


async def close_orders(
    conn: AsyncConnection, status: str, order_ids: list[int], actor: Actor = SYSTEM_ACTOR
) -> Closed:
    """Close reserved orders (cancelled, expired, refunded) and return their units, in one
    transaction, recording each change as the actor's."""
    rows = list(
        await conn.execute(
            text(
                "WITH c AS (UPDATE orders SET status = CAST(:status AS order_status), closed_at = now() "
                "WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'reserved' RETURNING *) "
                f"SELECT {ORDER_COLUMNS} FROM c AS o {ORDER_JOINS}"
            ),
            {"status": status, "ids": order_ids},
        )
    )
    returned = await ledger.return_units(conn, rows)
    action = CLOSING_ACTIONS[status]
    await order_log.record(conn, actor, [Change(row.id, action, "reserved", status) for row in rows])
    return Closed([order_view(row) for row in rows], returned)


async def cancel_order(session: AsyncSession, who: Principal, order_id: int) -> Closed:
    """The buyer (or the merchant's operator, audited) cancels an unpaid order in the session's
    transaction; its units go back."""
    conn = await session.connection()
    order = (await conn.execute(ORDER_TO_CANCEL, {"id": order_id})).one_or_none()
    if order is None or (order.user_id != who.user_id and not may(who, "order.manage", order.merchant_id)):
        raise AppError("not_found", "no such order")
    if order.status != "reserved":
        raise AppError("not_cancellable", f"the order is {order.status}")
    closed = await close_orders(conn, "cancelled", [order_id], Actor.of(who))
    if order.user_id != who.user_id:
        await audit(
            session,
            who,
            "order.cancel",
            merchant_id=order.merchant_id,
            target_type="order",
            target_id=order_id,
        )
    return closed
