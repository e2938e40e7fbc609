"""The order service: places and cancels orders for HTTP and WebSocket alike, decides each sale's
taps in batches (or one by one, the row-lock baseline) and announces what changed."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, authorize
from livecommerce.commerce.batching import Tap, TapBatcher
from livecommerce.commerce.closing import Closed, cancel_order
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.lifecycle import STATUSES
from livecommerce.commerce.list_price import reserve_at_list_price
from livecommerce.commerce.order_metrics import OrderMetrics
from livecommerce.commerce.order_views import recent_orders
from livecommerce.commerce.ownership import authorize_on
from livecommerce.commerce.reservation import (
    Answer,
    BatchResult,
    SaleChanged,
    contended,
    reserve_batch,
    reserve_one,
)
from livecommerce.commerce.sales import SaleDirectory, SaleRef, read_sale, sale_view
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import SALE_LIVE, SALE_SOLD_OUT

MAX_QUANTITY = 100
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{8,100}")
CONTENDED_TRIES = 5
ROOM_ORDERS_LIMIT = 500
OPTIMISTIC_TRIES = 2  # then the batch is decided under the sale's row lock, which always succeeds


def check_order_input(quantity: Any, key: Any) -> None:
    """Refuse bad input before it becomes a tap: nothing is written for it."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise AppError("invalid", f"quantity: a whole number from 1 to {MAX_QUANTITY}")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise AppError("invalid", "idempotency_key: 8 to 100 characters from A-Z a-z 0-9 . _ : -")


def tap_of(who: Principal, quantity: Any, key: Any) -> Tap:
    """The tap, if this principal may place orders and the input is good."""
    authorize(who, "order.place")
    check_order_input(quantity, key)
    return Tap(who.user_id, key, quantity)


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement commits by itself (no BEGIN, no COMMIT)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def sale_in_room(ref: SaleRef, room_id: int | None) -> SaleRef:
    """The sale, if it runs in the room the tap came from (or the tap named no room)."""
    if room_id is not None and ref.room_id != room_id:
        raise AppError("invalid", "that sale runs in another room")
    return ref


class OrderService:
    """Places and cancels orders for HTTP and WebSocket alike, and announces what changed."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        directory: SaleDirectory,
        events: CommerceEvents,
        *,
        ttl_s: int,
        batching: bool,
        window_s: float,
        metrics: OrderMetrics,
    ) -> None:
        self._engine = engine
        self.metrics = metrics
        self._sessions = sessions
        self.directory = directory
        self.events = events
        self.ttl_s = ttl_s
        self.batching = batching
        self.batcher = TapBatcher(self._decide_batch, window_s=window_s, open_lane=lambda: autocommit(engine))

    async def place(
        self,
        who: Principal,
        *,
        quantity: Any,
        key: Any,
        sale_id: int | None = None,
        sku_id: int | None = None,
        room_id: int | None = None,
    ) -> Answer:
        """Reserve units of a sale (named by sale, or by SKU within a room while the SKU has a sale
        that has not ended), or of a SKU in the room's bag at its list price."""
        tap = tap_of(who, quantity, key)
        if sale_id is not None:
            ref = sale_in_room(await self.directory.get(sale_id), room_id)
        elif sku_id is not None and room_id is not None:
            found = await self.directory.for_sku(room_id, sku_id)
            if found is None:
                return await self._decide_at_list_price(room_id, sku_id, tap)
            ref = found
        else:
            raise AppError("invalid", "name a sale_id, or a sku_id in a room")
        if self.batching:
            return await self.batcher.submit(ref.sale_id, tap)
        return await self._decide_one(ref.sale_id, tap)

    def place_soon(
        self,
        who: Principal,
        on_answer: Callable[[Answer | BaseException], None],
        *,
        quantity: Any,
        key: Any,
        sale_id: int | None = None,
        sku_id: int | None = None,
        room_id: int | None = None,
    ) -> None:
        """`place`, answering through `on_answer` (exactly once, with the Answer or the error).

        A tap naming its sale goes straight into the sale's batch (after the one shared lookup
        of the sale's facts, for the first taps a node sees), with no task or future of its own.
        """
        tap = tap_of(who, quantity, key)
        if sale_id is not None and self.batching:

            def enqueue(ref: SaleRef | BaseException) -> None:
                try:
                    if isinstance(ref, BaseException):
                        raise ref
                    self.batcher.enqueue(sale_in_room(ref, room_id).sale_id, tap, on_answer)
                except Exception as exc:
                    on_answer(exc)

            self.directory.get_soon(sale_id, enqueue)
            return

        async def place() -> None:
            try:
                answer: Answer | BaseException = await self.place(
                    who, quantity=quantity, key=key, sale_id=sale_id, sku_id=sku_id, room_id=room_id
                )
            except Exception as exc:
                answer = exc
            on_answer(answer)

        self.events.spawn(place())

    async def _decide_batch(self, sale_id: int, taps: list[Tap], lane: AsyncConnection) -> list[Answer]:
        """One batch: optimistically on the sale's held autocommit connection (two round trips);
        if the sale keeps changing under it, under the sale's row lock."""
        started = time.perf_counter()
        result: BatchResult | None = None
        for _ in range(OPTIMISTIC_TRIES):
            try:
                result = await reserve_batch(lane, sale_id, taps, self.ttl_s, locked=False)
                break
            except (SaleChanged, IntegrityError):
                continue
        if result is None:
            result = await self._in_transaction(
                lambda conn: reserve_batch(conn, sale_id, taps, self.ttl_s, locked=True)
            )
        self._decided(sale_id, len(taps), result, started)
        return result.answers

    async def _decide_one(self, sale_id: int, tap: Tap) -> Answer:
        """The row-lock baseline: one tap, one transaction on a pooled connection."""
        started = time.perf_counter()
        result = await self._in_transaction(lambda conn: reserve_one(conn, sale_id, tap, self.ttl_s))
        self._decided(sale_id, 1, result, started)
        return result.answers[0]

    async def _in_transaction(self, work: Callable[[AsyncConnection], Awaitable[BatchResult]]) -> BatchResult:
        """Run `work` in a transaction; a key answered by another transaction meanwhile makes it
        run again (and replay that answer), and so does losing a deadlock to another node."""
        for attempt in range(CONTENDED_TRIES):
            try:
                async with self._engine.begin() as conn:
                    return await work(conn)
            except (IntegrityError, SaleChanged, DBAPIError) as exc:
                contention = isinstance(exc, (IntegrityError, SaleChanged)) or contended(exc)
                if not contention or attempt == CONTENDED_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _decide_at_list_price(self, room_id: int, sku_id: int, tap: Tap) -> Answer:
        """A tap on a SKU at its list price: one transaction on a pooled connection."""
        result = await self._in_transaction(
            lambda conn: reserve_at_list_price(conn, room_id, sku_id, tap, self.ttl_s)
        )
        self._announce_orders(result)
        return result.answers[0]

    def _decided(self, sale_id: int, taps: int, result: BatchResult, started: float) -> None:
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_taps.observe(taps)
        self._announce(sale_id, result)

    def _announce(self, sale_id: int, result: BatchResult) -> None:
        if result.taken:
            self.events.stock_changed(sale_id)
        if result.sold_out:
            self.events.spawn(self._announce_sale(sale_id, SALE_SOLD_OUT))
        self._announce_orders(result)

    def _announce_orders(self, result: BatchResult) -> None:
        # a key repeated within the batch shares its first tap's answer: announce each order once
        reserved = {
            a.order["order_id"]: a.order for a in result.answers if a.order is not None and not a.replayed
        }
        self.events.orders(list(reserved.values()))

    async def _announce_sale(self, sale_id: int, type_: str) -> None:
        async with self._engine.connect() as conn:
            row = await read_sale(conn, sale_id)
        if row is not None:
            await self.events.publish(row.room_id, type_, sale_view(row))

    async def cancel(self, who: Principal, order_id: int) -> dict[str, Any]:
        """The buyer (or the merchant's operator) cancels an unpaid order; its units go back."""
        async with self._sessions.begin() as session:
            closed = await cancel_order(session, who, order_id)
        self.announce_closed(closed)
        return closed.orders[0]

    def announce_closed(self, closed: Closed) -> None:
        for sale_id in closed.returned.sale_ids:
            self.events.stock_changed(sale_id)
        for _room_id, sale_id in closed.returned.reopened:
            self.events.spawn(self._announce_sale(sale_id, SALE_LIVE))
        self.events.orders(closed.orders)

    async def own_orders(self, user_id: int, room_id: int | None = None) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await recent_orders(conn, user_id=user_id, room_id=room_id, limit=100)

    async def in_room(self, who: Principal, room_id: int, status: str | None) -> list[dict[str, Any]]:
        """The room's latest orders (narrowed to a status), for the merchant's staff."""
        if status not in (None, *STATUSES):
            raise AppError("invalid", f"status: one of {', '.join(STATUSES)}")
        async with self._engine.connect() as conn:
            await authorize_on(conn, who, "sales.read", "rooms", room_id)
            return await recent_orders(conn, room_id=room_id, status=status, limit=ROOM_ORDERS_LIMIT)

    async def latest_in_room(self, room_id: int, limit: int) -> list[dict[str, Any]]:
        """The room's latest orders, for a caller that has checked the reader may see them."""
        async with self._engine.connect() as conn:
            return await recent_orders(conn, room_id=room_id, limit=limit)

    async def close(self) -> None:
        await self.batcher.close()
