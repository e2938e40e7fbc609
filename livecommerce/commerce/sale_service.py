"""Flash sales for HTTP: reading them, and the operator's changes (create, restock, reprice, end,
keep open after the live), each in one transaction with its audit row and announced to the sale's
room afterwards; and the end of the room's live, which ends the sales not kept open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit
from livecommerce.commerce import sales
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.ownership import authorize_on
from livecommerce.commerce.sales import SaleDirectory, SaleRef
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import (
    SALE_ENDED,
    SALE_LIVE,
    SALE_REPRICED,
    SALE_RESTOCKED,
    SALE_UPDATED,
    ends_the_live,
    sale_state_event,
)

SaleEvents = list[tuple[str, dict[str, Any]]]
"""What a change announces: (event type, sale view), the first one's view being the answer."""


class SaleService:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        directory: SaleDirectory,
        events: CommerceEvents,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._directory = directory
        self._events = events

    async def in_room(self, room_id: int, *, open_only: bool) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await sales.sales_in_room(conn, room_id, open_only=open_only)

    async def view(self, sale_id: int) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            row = await sales.read_sale(conn, sale_id)
        if row is None:
            raise AppError("not_found", "no such sale")
        return sales.sale_view(row)

    async def create(
        self,
        who: Principal,
        *,
        room_id: int,
        sku_id: int,
        sale_price_minor: int,
        allocated: int,
        per_user_limit: int,
        keep_open_after_live: bool,
        starts_at: datetime | None,
        duration_s: float,
        details: dict[str, Any],
    ) -> dict[str, Any]:
        """Allocate units of a SKU to a new sale in a room (audited with `details`)."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            merchant_id = await authorize_on(conn, who, "sale.manage", "rooms", room_id)
            view = await sales.create_sale(
                conn,
                room_id=room_id,
                sku_id=sku_id,
                sale_price_minor=sale_price_minor,
                allocated=allocated,
                per_user_limit=per_user_limit,
                keep_open_after_live=keep_open_after_live,
                starts_at=starts_at,
                duration_s=duration_s,
                created_by=who.user_id,
            )
            await audit(
                session,
                who,
                "sale.create",
                merchant_id=merchant_id,
                room_id=room_id,
                target_type="sale",
                target_id=view["sale_id"],
                details=details,
            )
        self._directory.remember(SaleRef(view["sale_id"], view["room_id"], merchant_id, view["sku_id"]))
        self._events.sale(view["room_id"], sale_state_event(view["state"]), view)
        return view

    async def restock(self, who: Principal, sale_id: int, units: int, *, receive: bool) -> dict[str, Any]:
        async def change(conn: AsyncConnection) -> SaleEvents:
            view, reopened = await sales.restock(conn, sale_id, units, receive=receive)
            return [(SALE_RESTOCKED, view), *([(SALE_LIVE, view)] if reopened else [])]

        return await self._change(who, sale_id, "sale.restock", {"units": units, "receive": receive}, change)

    async def reprice(self, who: Principal, sale_id: int, sale_price_minor: int) -> dict[str, Any]:
        async def change(conn: AsyncConnection) -> SaleEvents:
            return [(SALE_REPRICED, await sales.reprice(conn, sale_id, sale_price_minor))]

        return await self._change(
            who, sale_id, "sale.reprice", {"sale_price_minor": sale_price_minor}, change
        )

    async def end(self, who: Principal, sale_id: int) -> dict[str, Any]:
        async def change(conn: AsyncConnection) -> SaleEvents:
            return [(SALE_ENDED, await sales.end_sale(conn, sale_id))]

        return await self._change(who, sale_id, "sale.end", {}, change)

    async def keep_open_after_live(self, who: Principal, sale_id: int, keep_open: bool) -> dict[str, Any]:
        async def change(conn: AsyncConnection) -> SaleEvents:
            return [(SALE_UPDATED, await sales.keep_open_after_live(conn, sale_id, keep_open))]

        return await self._change(
            who, sale_id, "sale.keep_open_after_live", {"keep_open_after_live": keep_open}, change
        )

    async def end_with_live(self, room_id: int, stream_ended: dict[str, Any]) -> None:
        """A `stream.ended` observer: the live's end ends the room's sales not kept open."""
        if not ends_the_live(stream_ended):
            return
        async with self._engine.begin() as conn:
            views = await sales.end_with_live(conn, room_id)
        for view in views:
            self._events.sale(room_id, SALE_ENDED, view)

    async def _change(
        self,
        who: Principal,
        sale_id: int,
        action: str,
        details: dict[str, Any],
        change: Callable[[AsyncConnection], Awaitable[SaleEvents]],
    ) -> dict[str, Any]:
        """Run one operator change on a sale in a transaction with its audit row, then announce it."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            merchant_id = await authorize_on(conn, who, "sale.manage", "flash_sales", sale_id)
            events = await change(conn)
            view = events[0][1]
            await audit(
                session,
                who,
                action,
                merchant_id=merchant_id,
                room_id=view["room_id"],
                target_type="sale",
                target_id=sale_id,
                details=details,
            )
        for type_, event_view in events:
            self._events.sale(event_view["room_id"], type_, event_view)
        return view
