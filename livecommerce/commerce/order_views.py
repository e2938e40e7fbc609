"""Orders as buyers and staff see them: the one view of an order row (what was bought, by name,
and its parcel, where the query joined it), and order listings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.timestamps import iso

ORDER_COLUMNS = (
    "o.id, o.room_id, o.sale_id, o.sku_id, o.user_id, o.status, o.quantity, o.unit_price_minor, "
    "o.amount_minor, o.currency, o.reserved_until, o.created_at, o.paid_at, o.closed_at, u.display_name AS buyer, "
    "pr.name AS product, sk.name AS sku_name"
)
ORDER_JOINS = (
    "LEFT JOIN users u ON u.id = o.user_id LEFT JOIN skus sk ON sk.id = o.sku_id "
    "LEFT JOIN products pr ON pr.id = sk.product_id"
)
"""What ORDER_COLUMNS reads besides the order `o`: its buyer and what was bought (left joins, so
a query whose `o` may be missing keeps its row)."""

SHIPMENT_COLUMNS = "sh.carrier, sh.tracking_number, sh.shipped_at, sh.delivered_at"
ORDERS_FROM = f"orders o {ORDER_JOINS} LEFT JOIN shipments sh ON sh.order_id = o.id"
"""Orders with their buyer and parcel: what `full_order_view` reads."""


def order_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "order_id": row.id,
        "room_id": row.room_id,
        "sale_id": row.sale_id,
        "sku_id": row.sku_id,
        "product": row.product,
        "sku_name": row.sku_name,
        "user_id": row.user_id,
        "buyer": row.buyer,
        "status": str(row.status),
        "quantity": row.quantity,
        "unit_price_minor": row.unit_price_minor,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "reserved_until": iso(row.reserved_until),
        "created_at": iso(row.created_at),
        "paid_at": iso(row.paid_at),
        "closed_at": iso(row.closed_at),
    }


def full_order_view(row: Row[Any]) -> dict[str, Any]:
    """The order's view with its parcel (`shipment`: null until it ships), from ORDERS_FROM."""
    view = order_view(row)
    view["shipment"] = (
        None
        if row.carrier is None
        else {
            "carrier": row.carrier,
            "tracking_number": row.tracking_number,
            "shipped_at": iso(row.shipped_at),
            "delivered_at": iso(row.delivered_at),
        }
    )
    return view


async def recent_orders(
    conn: AsyncConnection,
    *,
    limit: int,
    user_id: int | None = None,
    room_id: int | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Orders newest first, narrowed to a buyer, a room and a status where given."""
    conditions = [
        condition
        for condition, value in (
            ("o.user_id = :user", user_id),
            ("o.room_id = :room", room_id),
            ("o.status = CAST(:status AS order_status)", status),
        )
        if value is not None
    ]
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = await conn.execute(
        text(
            f"SELECT {ORDER_COLUMNS}, {SHIPMENT_COLUMNS} FROM {ORDERS_FROM} {where}"
            "ORDER BY o.id DESC LIMIT :limit"
        ),
        {"user": user_id, "room": room_id, "status": status, "limit": limit},
    )
    return [full_order_view(row) for row in rows]


async def read_order(conn: AsyncConnection, order_id: int) -> dict[str, Any]:
    """The view of one order that exists."""
    row = (
        await conn.execute(
            text(f"SELECT {ORDER_COLUMNS}, {SHIPMENT_COLUMNS} FROM {ORDERS_FROM} WHERE o.id = :id"),
            {"id": order_id},
        )
    ).one()
    return full_order_view(row)
