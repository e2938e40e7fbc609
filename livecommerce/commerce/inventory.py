"""The operator's inventory: each SKU's stock on hand, promised and free, and counting units in or
out (rooms offering the SKU hear of its new free stock)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize
from livecommerce.commerce import ledger
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.ownership import authorize_on, own_merchant

SKUS_OF_MERCHANT = text(
    "SELECT s.id AS sku_id, s.product_id, p.name AS product, s.code, s.name, s.price_minor, s.currency, "
    "s.on_hand, s.reserved, s.on_hand - s.reserved AS available FROM skus s "
    "JOIN products p ON p.id = s.product_id WHERE s.merchant_id = :m ORDER BY s.product_id, s.id"
)


class Inventory:
    """Reads and changes SKU stock for the merchant's staff (changes audited)."""

    def __init__(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], events: CommerceEvents
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._events = events

    async def skus(self, who: Principal, merchant_id: int | None) -> list[dict[str, Any]]:
        """Every SKU of the merchant (the caller's own unless named) with its stock."""
        merchant_id = own_merchant(who, merchant_id)
        authorize(who, "sales.read", merchant_id)
        async with self._engine.connect() as conn:
            rows = await conn.execute(SKUS_OF_MERCHANT, {"m": merchant_id})
            return [dict(row._mapping) for row in rows]

    async def change_stock(self, who: Principal, sku_id: int, delta: int) -> dict[str, int]:
        """Count units in (positive) or out (negative); never below what is promised."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            merchant_id = await authorize_on(conn, who, "inventory.manage", "skus", sku_id)
            stock = await ledger.receive(conn, sku_id, delta)
            await audit(
                session,
                who,
                "sku.stock",
                merchant_id=merchant_id,
                target_type="sku",
                target_id=sku_id,
                details={"delta": delta, **stock},
            )
        self._events.free_stock_changed(sku_id)
        return stock
