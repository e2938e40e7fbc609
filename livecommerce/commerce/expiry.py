"""The reservation sweeper: unpaid orders past `reserved_until` expire and give their units back.

Each sweep claims due orders with `FOR UPDATE SKIP LOCKED`, so several nodes sweep side by side
without waiting on each other or expiring an order twice; an order being paid or cancelled at
that moment is locked and simply skipped.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.commerce.closing import Closed, close_orders
from livecommerce.commerce.orders import OrderService

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
SWEEP_BATCH = 500

DUE_ORDERS = text(
    "SELECT id FROM orders WHERE status = 'reserved' AND reserved_until <= now() "
    "ORDER BY reserved_until LIMIT :n FOR UPDATE SKIP LOCKED"
)


async def sweep_once(conn: AsyncConnection, limit: int = SWEEP_BATCH) -> Closed:
    """Expire up to `limit` due orders inside the caller's transaction."""
    due = [row.id for row in await conn.execute(DUE_ORDERS, {"n": limit})]
    return await close_orders(conn, "expired", due)


class ExpirySweeper:
    """Sweeps every second (and again at once while a sweep came back full)."""

    def __init__(self, engine: AsyncEngine, orders: OrderService) -> None:
        self._engine = engine
        self._orders = orders

    async def sweep(self) -> int:
        async with self._engine.begin() as conn:
            closed = await sweep_once(conn)
        self._orders.announce_closed(closed)
        return len(closed.orders)

    async def run(self) -> None:
        while True:
            try:
                if await self.sweep() == SWEEP_BATCH:
                    continue
            except Exception:
                log.exception("reservation sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL_S)
