"""Who may see where an order goes, and the record of every time staff did.

An order's shipping details (name, phone, email, address) are shown to its buyer and to the
operators of the order's merchant (`order.read_pii`), never to anchors, moderators, other
merchants or platform admins. Every staff view or CSV export writes a `personal_data_access` row (who, when, what
action, which orders) in the same transaction that reads the addresses.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.auth import Principal, authorize, may
from livecommerce.commerce.buyer_details import FIELDS
from livecommerce.errors import AppError
from livecommerce.timestamps import iso

VIEWED = "address.view"
EXPORTED = "address.export"
EXPORT_LIMIT = 50_000

ORDER_SHIPPING = text("SELECT user_id, merchant_id, shipping FROM orders WHERE id = :id")
RECORD_ACCESS = text(
    "INSERT INTO personal_data_access (actor_id, actor_role, merchant_id, action, order_ids, details) "
    "VALUES (:actor, :role, :merchant, :action, CAST(:orders AS bigint[]), CAST(:details AS jsonb))"
)
EXPORTED_ORDERS = text(
    "SELECT o.id, o.created_at, o.paid_at, o.status, o.room_id, o.quantity, o.unit_price_minor, "
    "o.amount_minor, o.currency, p.name AS product, k.code AS sku_code, k.name AS sku_name, "
    "u.display_name AS buyer, o.shipping FROM orders o JOIN skus k ON k.id = o.sku_id "
    "JOIN products p ON p.id = k.product_id JOIN users u ON u.id = o.user_id "
    "WHERE o.merchant_id = :merchant AND (CAST(:room AS bigint) IS NULL OR o.room_id = :room) "
    "AND (CAST(:status AS text) IS NULL OR o.status = CAST(:status AS order_status)) "
    "ORDER BY o.id LIMIT :limit"
)
CSV_COLUMNS = (
    "order_id",
    "created_at",
    "paid_at",
    "status",
    "room_id",
    "product",
    "sku_code",
    "sku_name",
    "quantity",
    "unit_price_minor",
    "amount_minor",
    "currency",
    "buyer",
    *FIELDS,
)


async def _record(
    conn: AsyncConnection, who: Principal, merchant_id: int, action: str, order_ids: list[int], details: str
) -> None:
    await conn.execute(
        RECORD_ACCESS,
        {
            "actor": who.user_id,
            "role": who.role.value,
            "merchant": merchant_id,
            "action": action,
            "orders": order_ids,
            "details": details,
        },
    )


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    cell = "" if value is None else str(value)
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


class AddressAccess:
    """Order shipping details for the buyer and the merchant's operators, audited for staff."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def shipping_of(self, who: Principal, order_id: int) -> dict[str, Any]:
        """`{"order_id", "shipping"}` (None before the buyer gave details)."""
        async with self._engine.begin() as conn:
            order = (await conn.execute(ORDER_SHIPPING, {"id": order_id})).one_or_none()
            if order is None or (order.user_id != who.user_id and not who.is_staff):
                raise AppError("not_found", "no such order")
            if order.user_id != who.user_id:
                if not may(who, "order.read_pii", order.merchant_id):
                    raise AppError("forbidden", "only the shop's operators may see buyers' addresses")
                await _record(conn, who, order.merchant_id, VIEWED, [order_id], "{}")
        return {"order_id": order_id, "shipping": order.shipping}

    async def export_csv(
        self, who: Principal, merchant_id: int, *, room_id: int | None, status: str | None
    ) -> str:
        """The merchant's orders (narrowed to a room and a status) with their shipping details,
        oldest first, as CSV; the export and its orders are recorded."""
        authorize(who, "order.read_pii", merchant_id)
        async with self._engine.begin() as conn:
            rows = list(
                await conn.execute(
                    EXPORTED_ORDERS,
                    {"merchant": merchant_id, "room": room_id, "status": status, "limit": EXPORT_LIMIT},
                )
            )
            scope = orjson.dumps({"room_id": room_id, "status": status}).decode()
            await _record(conn, who, merchant_id, EXPORTED, [row.id for row in rows], scope)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            shipping = row.shipping or {}
            writer.writerow(
                [
                    _cell(value)
                    for value in (
                        row.id,
                        iso(row.created_at),
                        iso(row.paid_at),
                        row.status,
                        row.room_id,
                        row.product,
                        row.sku_code,
                        row.sku_name,
                        row.quantity,
                        row.unit_price_minor,
                        row.amount_minor,
                        row.currency,
                        row.buyer,
                        *(shipping.get(field, "") for field in FIELDS),
                    )
                ]
            )
        return out.getvalue()
