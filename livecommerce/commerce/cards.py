"""Product cards: anchors and operators pin a product to the room; every viewer sees it live.
Pinning a product also puts it in the live's bag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize
from livecommerce.commerce.bag import Bag, bag_cards, put_in_bag
from livecommerce.commerce.catalog import product_card
from livecommerce.commerce.events import CommerceEvents
from livecommerce.db.models import Product, Room
from livecommerce.errors import AppError
from livecommerce.http import Id, parse
from livecommerce.realtime.event_types import CARD_PINNED, CARD_UNPINNED
from livecommerce.realtime.hub import CommandContext, Hub


class PinCard(BaseModel):
    product_id: Id


class Cards:
    """Pins and unpins a room's product card (audited) and announces it to the room."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], events: CommerceEvents, bag: Bag) -> None:
        self._sessions = sessions
        self._events = events
        self._bag = bag

    async def pin(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "card.pin", ctx.merchant_id)
        body = parse(PinCard, data)
        async with self._sessions.begin() as session:
            merchant_id = await session.scalar(
                select(Product.merchant_id).where(Product.id == body.product_id)
            )
            if merchant_id != ctx.merchant_id:
                raise AppError("not_found", f"product {body.product_id} is not in this shop")
            await session.execute(
                update(Room)
                .where(Room.id == ctx.room_id)
                .values(pinned_product_id=body.product_id, pinned_at=datetime.now(UTC))
            )
            await audit(
                session,
                ctx.principal,
                "card.pin",
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="product",
                target_id=body.product_id,
            )
            card = await product_card(session, body.product_id)
            added = await put_in_bag(session, ctx.room_id, body.product_id)
            bag = await bag_cards(session, ctx.room_id) if added else None
        await self._events.publish(ctx.room_id, CARD_PINNED, {"card": card})
        if bag is not None:
            await self._bag.announce(ctx.room_id, bag)
        return {"card": card}

    async def unpin(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "card.pin", ctx.merchant_id)
        async with self._sessions.begin() as session:
            previous = await session.scalar(select(Room.pinned_product_id).where(Room.id == ctx.room_id))
            await session.execute(
                update(Room).where(Room.id == ctx.room_id).values(pinned_product_id=None, pinned_at=None)
            )
            await audit(
                session,
                ctx.principal,
                "card.unpin",
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="product",
                target_id=previous or "",
            )
        await self._events.publish(ctx.room_id, CARD_UNPINNED, {"product_id": previous})
        return {"product_id": previous}

    async def pinned_card(self, room_id: int, principal: Principal) -> dict[str, Any] | None:
        async with self._sessions() as session:
            product_id = await session.scalar(select(Room.pinned_product_id).where(Room.id == room_id))
            return await product_card(session, product_id) if product_id else None

    def register(self, hub: Hub) -> None:
        hub.command("card.pin", self.pin)
        hub.command("card.unpin", self.unpin)
        hub.snapshot_provider("card", self.pinned_card)
