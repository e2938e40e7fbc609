"""What the commerce plane tells rooms: sale state, coalesced stock of sales and of SKUs' free
stock, order results, the order feed.

Everything goes through the room hub's `publish`. Stock changes are coalesced per sale (and per
SKU) by `StockThrottle` (pure), and each coalesced event reads the value from PostgreSQL when it
is sent, so the last event after a burst always carries the true stock. Every sale view and
stock event carries the sale's (or SKU's) `version`, which PostgreSQL raises in each statement
that changes it; events from several nodes may reach a room out of order, so receivers keep the
highest version they have seen (`HighestVersion`), and one node never sends an older one after
a newer.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.commerce.lookups import SharedLookup
from livecommerce.realtime.event_types import ORDER_FEED, ORDER_UPDATED, SKU_STOCK, STOCK

log = logging.getLogger(__name__)

Publish = Callable[..., Awaitable[Any]]
STOCK_INTERVAL_S = 0.25


class StockThrottle:
    """At most one stock event per sale (or SKU) per interval, one at a time; changes meanwhile
    ride on it.

    `changed()` returns the delay after which to send, or None when a send is already pending
    or under way. `sending()` is called just before the value is read and `sent()` once it is
    published: a change after the read makes `sent()` return the delay of one more send, so the
    last event of a burst always reflects the last change, and sends of one sale never overlap
    (each reads after the previous one was published, so their versions only go up).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}
        self._pending: set[int] = set()
        self._sending: set[int] = set()
        self._changed_meanwhile: set[int] = set()

    def changed(self, sale_id: int, now: float) -> float | None:
        if sale_id in self._sending:
            self._changed_meanwhile.add(sale_id)
            return None
        if sale_id in self._pending:
            return None
        self._pending.add(sale_id)
        return max(0.0, self._last.get(sale_id, -math.inf) + self.interval - now)

    def sending(self, sale_id: int, now: float) -> None:
        self._pending.discard(sale_id)
        self._sending.add(sale_id)
        self._last[sale_id] = now

    def sent(self, sale_id: int, now: float) -> float | None:
        self._sending.discard(sale_id)
        if sale_id not in self._changed_meanwhile:
            return None
        self._changed_meanwhile.discard(sale_id)
        return self.changed(sale_id, now)


class HighestVersion:
    """The rule every receiver of sale state follows: a version lower than or equal to the
    highest one seen for that sale is stale (or already known) and is ignored."""

    def __init__(self) -> None:
        self._highest: dict[int, int] = {}

    def advance(self, sale_id: int, version: int) -> bool:
        """True (and remember it) when `version` is newer than any seen for the sale."""
        if version <= self._highest.get(sale_id, -1):
            return False
        self._highest[sale_id] = version
        return True


STAFF_CACHE_S = 30.0
STAFF_OF_ROOM = text(
    "SELECT u.id FROM users u JOIN rooms r ON r.merchant_id = u.merchant_id "
    "WHERE r.id = :room AND u.role IN ('anchor', 'operator') AND NOT u.disabled"
)
STOCK_OF_SALE = text(
    "SELECT f.room_id, f.sku_id, s.product_id, f.available, f.allocated, f.state, f.stock_version "
    "FROM flash_sales f JOIN skus s ON s.id = f.sku_id WHERE f.id = :id"
)
# the SKU's free stock and the rooms whose bag offers its product (a pinned one is in the bag)
FREE_STOCK_OF_SKU = text(
    "SELECT s.product_id, s.on_hand - s.reserved AS available, s.stock_version, "
    "array_remove(array_agg(b.room_id ORDER BY b.room_id), NULL) AS rooms "
    "FROM skus s LEFT JOIN room_products b ON b.product_id = s.product_id WHERE s.id = :id "
    "GROUP BY s.id"
)


class CommerceEvents:
    """Room events of the commerce plane, sent in the background so answers never wait on them."""

    def __init__(
        self, engine: AsyncEngine, publish: Publish, *, stock_interval: float = STOCK_INTERVAL_S
    ) -> None:
        """`publish` is the room hub's publish."""
        self._engine = engine
        self._publish = publish
        self.throttle = StockThrottle(stock_interval)
        self._stock_sent = HighestVersion()
        self.free_throttle = StockThrottle(stock_interval)
        self._free_stock_sent = HighestVersion()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._staff: SharedLookup[int, list[int]] = SharedLookup(self._load_staff, ttl_s=STAFF_CACHE_S)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("commerce event failed", exc_info=task.exception())

    async def publish(self, room_id: int, type_: str, data: Any, *, to_user: int | None = None) -> None:
        await self._publish(room_id, type_, data, kind="commerce", to_user=to_user)

    def sale(self, room_id: int, type_: str, view: dict[str, Any]) -> None:
        """`sale.scheduled|live|sold_out|ended|restocked|repriced` with the sale's view; a sale
        that starts, is restocked or ends moves units between its SKU's free stock and itself."""
        self.spawn(self.publish(room_id, type_, view))
        self.stock_changed(view["sale_id"])
        self.free_stock_changed(view["sku_id"])

    def orders(self, orders: list[dict[str, Any]], type_: str = ORDER_UPDATED) -> None:
        """Each buyer's own order changed (private, as `type_`), and the staff order feed gets a
        line per order: one background task for all of them (a batch reserves hundreds at once).
        Any order change may move its SKU's free stock (a purchase at list price, its expiry or
        payment, a late payment taken from free stock, goods counted back in)."""
        for sku_id in {order["sku_id"] for order in orders}:
            self.free_stock_changed(sku_id)
        in_rooms = [order for order in orders if order.get("room_id") is not None]
        if in_rooms:
            self.spawn(self._announce_orders(in_rooms, type_))

    async def _announce_orders(self, orders: list[dict[str, Any]], type_: str) -> None:
        for order in orders:
            await self.publish(order["room_id"], type_, order, to_user=order["user_id"])
            # The feed is private to each of the merchant's staff accounts present in the room.
            feed = {key: order[key] for key in FEED_FIELDS}
            for user_id in await self._staff.get(order["room_id"]):
                await self.publish(order["room_id"], ORDER_FEED, feed, to_user=user_id)

    async def _load_staff(self, room_id: int) -> list[int]:
        async with self._engine.connect() as conn:
            return list(await conn.scalars(STAFF_OF_ROOM, {"room": room_id}))

    def stock_changed(self, sale_id: int) -> None:
        """A sale's stock changed: a coalesced `stock` event follows."""
        self._coalesce(self.throttle, sale_id, self._publish_stock)

    def free_stock_changed(self, sku_id: int) -> None:
        """A SKU's free stock may have changed: a coalesced `sku.stock` event follows in each
        room whose bag offers it, if its version moved."""
        self._coalesce(self.free_throttle, sku_id, self._publish_free_stock)

    def _coalesce(self, throttle: StockThrottle, key: int, send: Callable[[int], Awaitable[None]]) -> None:
        delay = throttle.changed(key, asyncio.get_running_loop().time())
        if delay is not None:
            self.spawn(self._send_coalesced(throttle, key, delay, send))

    async def _send_coalesced(
        self, throttle: StockThrottle, key: int, delay: float | None, send: Callable[[int], Awaitable[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while delay is not None:
            if delay:
                await asyncio.sleep(delay)
            throttle.sending(key, loop.time())
            try:
                await send(key)
            except Exception:
                log.exception("stock event %s of %s failed", send.__name__, key)
            delay = throttle.sent(key, loop.time())

    async def _publish_stock(self, sale_id: int) -> None:
        """Read the sale's stock and version in one statement; send it unless this node already
        sent that version (nothing changed since) or a newer one."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(STOCK_OF_SALE, {"id": sale_id})).one_or_none()
        if row is not None and self._stock_sent.advance(sale_id, row.stock_version):
            data = {
                "sale_id": sale_id,
                "sku_id": row.sku_id,
                "product_id": row.product_id,
                "available": row.available,
                "allocated": row.allocated,
                "state": row.state,
                "version": row.stock_version,
            }
            await self.publish(row.room_id, STOCK, data)

    async def _publish_free_stock(self, sku_id: int) -> None:
        """Read the SKU's free stock and version in one statement; send it to each room that
        offers it unless this node already sent that version or a newer one."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(FREE_STOCK_OF_SKU, {"id": sku_id})).one_or_none()
        if row is None or not row.rooms or not self._free_stock_sent.advance(sku_id, row.stock_version):
            return
        data = {
            "sku_id": sku_id,
            "product_id": row.product_id,
            "available": row.available,
            "version": row.stock_version,
        }
        for room_id in row.rooms:
            await self.publish(room_id, SKU_STOCK, data)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


FEED_FIELDS = (
    "order_id",
    "sale_id",
    "sku_id",
    "product",
    "sku_name",
    "status",
    "quantity",
    "amount_minor",
    "currency",
    "buyer",
)
