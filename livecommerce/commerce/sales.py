"""Flash sales: creation, live restock and reprice, ending, the clock that starts and ends them.

States: scheduled → live → sold_out ⇄ live (units come back or are restocked) → ended. A sale
ends at its end time, when an operator ends it, or when its room's live ends (unless the
merchant chose `keep_open_after_live`). A sale holds its whole allocation on the SKU (see
ledger) until it ends; ending gives the units still for sale back to the SKU. State changes are single conditional UPDATEs, so any number of
nodes can run the clock and each change is made (and announced) exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from livecommerce.commerce import ledger
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.lookups import SharedLookup
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import sale_state_event

log = logging.getLogger(__name__)

CLOCK_INTERVAL_S = 0.5
SALE_COLUMNS = (
    "f.id, f.room_id, f.merchant_id, f.sku_id, s.product_id, f.sale_price_minor, s.price_minor AS list_price_minor, "
    "f.currency, f.allocated, f.available, f.per_user_limit, f.keep_open_after_live, f.state, f.starts_at, f.ends_at, f.stock_version, "
    "now() AS now"
)


def sale_view(row: Row[Any]) -> dict[str, Any]:
    """A sale as clients see it: prices, stock, state, and the countdown from the server's clock."""
    now: datetime = row.now
    return {
        "sale_id": row.id,
        "room_id": row.room_id,
        "sku_id": row.sku_id,
        "product_id": row.product_id,
        "state": str(row.state),
        "sale_price_minor": row.sale_price_minor,
        "list_price_minor": row.list_price_minor,
        "currency": row.currency,
        "allocated": row.allocated,
        "available": row.available,
        "version": row.stock_version,
        "per_user_limit": row.per_user_limit,
        "keep_open_after_live": row.keep_open_after_live,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "starts_in_s": max(0.0, round((row.starts_at - now).total_seconds(), 3)),
        "ends_in_s": max(0.0, round((row.ends_at - now).total_seconds(), 3)),
    }


async def read_sale(db: AsyncConnection, sale_id: int) -> Row[Any] | None:
    return (
        await db.execute(
            text(f"SELECT {SALE_COLUMNS} FROM flash_sales f JOIN skus s ON s.id = f.sku_id WHERE f.id = :id"),
            {"id": sale_id},
        )
    ).one_or_none()


async def sales_in_room(db: AsyncConnection, room_id: int, *, open_only: bool = True) -> list[dict[str, Any]]:
    where = "f.room_id = :room" + (" AND f.state <> 'ended'" if open_only else "")
    rows = await db.execute(
        text(
            f"SELECT {SALE_COLUMNS} FROM flash_sales f JOIN skus s ON s.id = f.sku_id WHERE {where} ORDER BY f.id"
        ),
        {"room": room_id},
    )
    return [sale_view(row) for row in rows]


async def open_sales_of_product(
    db: AsyncConnection | AsyncSession, product_id: int
) -> dict[int, dict[str, Any]]:
    """SKU id → the view of its open sale, for the product card."""
    rows = await db.execute(
        text(
            f"SELECT {SALE_COLUMNS} FROM flash_sales f JOIN skus s ON s.id = f.sku_id "
            "WHERE s.product_id = :product AND f.state <> 'ended'"
        ),
        {"product": product_id},
    )
    return {row.sku_id: sale_view(row) for row in rows}


@dataclass(frozen=True, slots=True)
class SaleRef:
    """What never changes about a sale: where it runs and what it sells."""

    sale_id: int
    room_id: int
    merchant_id: int
    sku_id: int


class SaleDirectory:
    """Caches the immutable facts of sales, so a tap costs no lookup before its batch.

    The first taps of a storm all miss the cache at once; they share one lookup.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._refs: SharedLookup[int, SaleRef] = SharedLookup(self._load)

    async def get(self, sale_id: int) -> SaleRef:
        return await self._refs.get(sale_id)

    def remember(self, ref: SaleRef) -> None:
        """A sale this node just created: its first taps need no lookup."""
        self._refs.put(ref.sale_id, ref)

    def get_soon(self, sale_id: int, callback: Callable[[SaleRef | BaseException], None]) -> None:
        """`get`, calling back instead of waiting (at once when this node knows the sale)."""
        self._refs.get_soon(sale_id, callback)

    async def _load(self, sale_id: int) -> SaleRef:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, room_id, merchant_id, sku_id FROM flash_sales WHERE id = :id"),
                    {"id": sale_id},
                )
            ).one_or_none()
        if row is None:
            raise AppError("not_found", "no such sale")
        return SaleRef(row.id, row.room_id, row.merchant_id, row.sku_id)

    async def for_sku(self, room_id: int, sku_id: int) -> SaleRef | None:
        """The SKU's sale in a room that has not ended, or None: the SKU sells at list price."""
        async with self._engine.connect() as conn:
            sku = (
                await conn.execute(
                    text(
                        "SELECT s.merchant_id, r.merchant_id AS room_merchant FROM skus s, rooms r "
                        "WHERE s.id = :sku AND r.id = :room"
                    ),
                    {"sku": sku_id, "room": room_id},
                )
            ).one_or_none()
            if sku is None:
                raise AppError("not_found", "no such SKU")
            if sku.merchant_id != sku.room_merchant:
                raise AppError("invalid", "that SKU is not sold in this room")
            sale_id = await conn.scalar(
                text(
                    "SELECT id FROM flash_sales WHERE room_id = :room AND sku_id = :sku AND state <> 'ended' "
                    "ORDER BY id DESC LIMIT 1"
                ),
                {"sku": sku_id, "room": room_id},
            )
        return None if sale_id is None else await self.get(sale_id)


async def create_sale(
    conn: AsyncConnection,
    *,
    room_id: int,
    sku_id: int,
    sale_price_minor: int,
    allocated: int,
    per_user_limit: int,
    keep_open_after_live: bool,
    starts_at: datetime | None,
    duration_s: float,
    created_by: int,
) -> dict[str, Any]:
    """Allocate units from the SKU's free stock to a new sale in a room of the SKU's merchant."""
    sku = (
        await conn.execute(
            text(
                "SELECT s.id, s.merchant_id, s.currency, r.merchant_id AS room_merchant "
                "FROM skus s, rooms r WHERE s.id = :sku AND r.id = :room"
            ),
            {"sku": sku_id, "room": room_id},
        )
    ).one_or_none()
    if sku is None:
        raise AppError("not_found", "no such SKU or room")
    if sku.merchant_id != sku.room_merchant:
        raise AppError("invalid", "the SKU belongs to another merchant")
    if not await ledger.hold(conn, sku_id, allocated):
        raise AppError("insufficient_stock", f"the SKU has fewer than {allocated} free units")
    try:
        async with conn.begin_nested():
            sale_id = await conn.scalar(
                text(
                    "INSERT INTO flash_sales (room_id, merchant_id, sku_id, sale_price_minor, currency, allocated, "
                    "available, per_user_limit, keep_open_after_live, state, starts_at, ends_at, created_by) "
                    "VALUES (:room, :merchant, :sku, :price, :currency, :n, :n, :limit, :keep_open, "
                    "CASE WHEN coalesce(:start, now()) <= now() THEN 'live' ELSE 'scheduled' END::sale_state, "
                    "coalesce(:start, now()), coalesce(:start, now()) + make_interval(secs => CAST(:duration AS double precision)), :by) "
                    "RETURNING id"
                ),
                {
                    "room": room_id,
                    "merchant": sku.merchant_id,
                    "sku": sku_id,
                    "price": sale_price_minor,
                    "currency": sku.currency,
                    "n": allocated,
                    "limit": per_user_limit,
                    "keep_open": keep_open_after_live,
                    "start": starts_at,
                    "duration": duration_s,
                    "by": created_by,
                },
            )
    except IntegrityError:
        raise AppError("conflict", "this SKU already has an open flash sale") from None
    row = await read_sale(conn, sale_id)
    assert row is not None
    return sale_view(row)


async def restock(
    conn: AsyncConnection, sale_id: int, units: int, *, receive: bool
) -> tuple[dict[str, Any], bool]:
    """Add units to a running sale (from free stock, or newly received); reopen it if sold out.

    Returns the sale's view and whether it reopened. The sale row is locked before the SKU,
    the same order every other path takes.
    """
    rows = await ledger.put_back(conn, {sale_id: units}, allocate=True)
    if not rows:
        raise AppError("ended", "the sale has ended; start a new one")
    row = rows[0]
    if receive:
        await ledger.receive(conn, row.sku_id, units)
    if not await ledger.hold(conn, row.sku_id, units):
        raise AppError("insufficient_stock", f"the SKU has fewer than {units} free units")
    view = sale_view(await read_sale(conn, sale_id))  # type: ignore[arg-type]
    return view, view["state"] == "live" and row.available == units


async def reprice(conn: AsyncConnection, sale_id: int, sale_price_minor: int) -> dict[str, Any]:
    """Change the price for taps from now on; reserved orders keep the price they were given."""
    result = await conn.execute(
        text("UPDATE flash_sales SET sale_price_minor = :p WHERE id = :id AND state <> 'ended'"),
        {"id": sale_id, "p": sale_price_minor},
    )
    if result.rowcount != 1:
        raise AppError("ended", "the sale has ended")
    return sale_view(await read_sale(conn, sale_id))  # type: ignore[arg-type]


async def keep_open_after_live(conn: AsyncConnection, sale_id: int, keep_open: bool) -> dict[str, Any]:
    """Choose whether the sale stays open when the room's live ends."""
    result = await conn.execute(
        text("UPDATE flash_sales SET keep_open_after_live = :keep WHERE id = :id AND state <> 'ended'"),
        {"id": sale_id, "keep": keep_open},
    )
    if result.rowcount != 1:
        raise AppError("ended", "the sale has ended")
    return sale_view(await read_sale(conn, sale_id))  # type: ignore[arg-type]


END_SALES = (
    "UPDATE flash_sales SET state = 'ended', ended_at = now() "
    "WHERE {where} AND state <> 'ended' "
    "RETURNING id, sku_id, available"
)


async def _ended(conn: AsyncConnection, rows: list[Row[Any]]) -> list[dict[str, Any]]:
    views = []
    for row in rows:
        await ledger.release(conn, row.sku_id, row.available)
        views.append(sale_view(await read_sale(conn, row.id)))  # type: ignore[arg-type]
    return views


async def end_sale(conn: AsyncConnection, sale_id: int) -> dict[str, Any]:
    """End a sale now: units still for sale go back to the SKU's free stock."""
    rows = list(await conn.execute(text(END_SALES.format(where="id = :id")), {"id": sale_id}))
    if not rows:
        raise AppError("ended", "the sale has already ended")
    return (await _ended(conn, rows))[0]


async def end_with_live(conn: AsyncConnection, room_id: int) -> list[dict[str, Any]]:
    """The room's live ended: end its scheduled and running sales, except those the merchant
    keeps open after the live."""
    rows = list(
        await conn.execute(
            text(END_SALES.format(where="room_id = :room AND NOT keep_open_after_live")), {"room": room_id}
        )
    )
    return await _ended(conn, rows)


async def clock_tick(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Start sales whose time has come and end those whose time is up; return what changed."""
    started = await conn.execute(
        text(
            "UPDATE flash_sales SET state = 'live' WHERE state = 'scheduled' AND starts_at <= now() RETURNING id"
        )
    )
    views = [sale_view(await read_sale(conn, sale_id)) for (sale_id,) in list(started)]  # type: ignore[arg-type]
    ended = list(await conn.execute(text(END_SALES.format(where="ends_at <= now()"))))
    return views + await _ended(conn, ended)


class SaleClock:
    """Runs `clock_tick` twice a second and announces each change to its room."""

    def __init__(self, engine: AsyncEngine, events: CommerceEvents) -> None:
        self._engine = engine
        self._events = events

    async def run(self) -> None:
        while True:
            try:
                async with self._engine.begin() as conn:
                    changed = await clock_tick(conn)
                for view in changed:
                    self._events.sale(view["room_id"], sale_state_event(view["state"]), view)
            except Exception:
                log.exception("sale clock tick failed")
            await asyncio.sleep(CLOCK_INTERVAL_S)
