"""The shoppable replay: a recording with the live's product cards, flash sales and draws on its
timeline, at the moments they happened (from what the database keeps: card pins in the audit
log, the sales, the draws), its clips, and the replay page.

The product shown at a moment is bought there at its list price, while it is in the room's bag:
flash-sale prices ended with the live.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce import accounts
from livecommerce.commerce.catalog import product_card
from livecommerce.db.models import AuditLog, Draw, FlashSale, Recording, Sku
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response
from livecommerce.media.recording import Recordings, recording_view
from livecommerce.web import pages


def _offset(moment: datetime, start: datetime) -> float:
    return round(max(0.0, (moment - start).total_seconds()), 3)


async def _card(session: AsyncSession, product_id: int) -> dict[str, Any] | None:
    """The product's card at its list price (no sale: those ended with the live)."""
    card = await product_card(session, product_id)
    if card is not None:
        for sku in card["skus"]:
            sku.pop("sale", None)
    return card


async def timeline(session: AsyncSession, recording: Recording) -> list[dict[str, Any]]:
    """Every card, sale and draw moment within the recording, in order; `at` is seconds into it.
    A card pinned before the recording started is shown from 0."""
    start = recording.started_at
    end = recording.ended_at or datetime.now(UTC)
    room_id = recording.room_id
    moments: list[dict[str, Any]] = []

    pins = await session.execute(
        select(AuditLog.at, AuditLog.action, AuditLog.target_id)
        .where(
            AuditLog.room_id == room_id,
            AuditLog.action.in_(("card.pin", "card.unpin")),
            AuditLog.at <= end,
        )
        .order_by(AuditLog.at, AuditLog.id)
    )
    showing: tuple[datetime, str] | None = None  # the card on screen when the recording began
    for at, action, target in pins:
        if at < start:
            showing = (at, target) if action == "card.pin" else None
            continue
        if showing is not None:
            moments.append({"at": 0.0, "kind": "card", "card": await _card(session, int(showing[1]))})
            showing = None
        if action == "card.pin":
            moments.append(
                {"at": _offset(at, start), "kind": "card", "card": await _card(session, int(target))}
            )
        else:
            moments.append({"at": _offset(at, start), "kind": "card", "card": None})
    if showing is not None:
        moments.append({"at": 0.0, "kind": "card", "card": await _card(session, int(showing[1]))})

    sales = await session.execute(
        select(FlashSale, Sku.product_id, Sku.name, Sku.price_minor)
        .join(Sku, Sku.id == FlashSale.sku_id)
        .where(
            FlashSale.room_id == room_id,
            FlashSale.starts_at <= end,
            func.coalesce(FlashSale.ended_at, FlashSale.ends_at) >= start,
        )
        .order_by(FlashSale.starts_at)
    )
    for sale, product_id, sku_name, list_price in sales:
        until = sale.ended_at or sale.ends_at
        moments.append(
            {
                "at": _offset(sale.starts_at, start),
                "until": _offset(min(until, end), start),
                "kind": "sale",
                "sale_id": sale.id,
                "product_id": product_id,
                "sku_id": sale.sku_id,
                "sku_name": sku_name,
                "sale_price_minor": sale.sale_price_minor,
                "list_price_minor": list_price,
                "currency": sale.currency,
            }
        )

    draws = await session.scalars(
        select(Draw)
        .where(Draw.room_id == room_id, Draw.opens_at <= end, Draw.closes_at >= start)
        .order_by(Draw.opens_at)
    )
    for draw in draws:
        moments.append(
            {
                "at": _offset(draw.opens_at, start),
                "until": _offset(min(draw.closed_at or draw.closes_at, end), start),
                "kind": "draw",
                "draw_id": draw.id,
                "prize_text": draw.prize_text,
            }
        )
    moments.sort(key=lambda moment: moment["at"])
    return moments


class Replay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        recordings: Recordings,
        payments_test_mode: bool,
    ) -> None:
        self.sessions = sessions
        self.recordings = recordings
        self.payments_test_mode = payments_test_mode

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/recordings/{session_id}", self.view),
            web.get("/replay/{session_id}", self.page),
        ]

    async def view(self, request: web.Request) -> web.Response:
        """The recording, its room, its timeline and its clips: what the replay page shows."""
        session_id = int_param(request, "session_id")
        found = await self.recordings.find(session_id)
        if found is None:
            raise AppError("not_found", "no such recording")
        recording, _ = found
        async with self.sessions() as session:
            moments = await timeline(session, recording)
            room = await accounts.find_room(session, recording.room_id)
        assert room is not None  # a recording goes with its room
        return json_response(
            {
                "recording": recording_view(recording),
                "room": {"room_id": room.id, "title": room.title, "watch_url": f"/watch/{room.id}"},
                "timeline": moments,
                "clips": await self.recordings.clips(session_id),
            }
        )

    async def page(self, request: web.Request) -> web.Response:
        try:
            session_id = int_param(request, "session_id")
        except AppError:
            raise web.HTTPNotFound() from None
        found = await self.recordings.find(session_id)
        if found is None:
            raise web.HTTPNotFound()
        async with self.sessions() as session:
            room = await accounts.find_room(session, found[0].room_id)
        assert room is not None
        values = {
            "session_id": str(session_id),
            "room_id": str(room.id),
            "room_title": room.title,
            "payments": "test" if self.payments_test_mode else "stripe",
        }
        return pages.html_page("replay", values)
