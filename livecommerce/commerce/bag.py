"""The live's bag: the products a room offers in its live, chosen by the anchor or an operator.

Viewers get the bag in the join snapshot and every change as `bag.updated`; any product in it
can be bought at list price (`list_price`). A pinned product is always in the bag.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit
from livecommerce.commerce.catalog import product_card
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.lookups import SharedLookup
from livecommerce.commerce.ownership import authorize_on
from livecommerce.errors import AppError
from livecommerce.http import Id, parse
from livecommerce.realtime.event_types import BAG_UPDATED
from livecommerce.realtime.hub import CommandContext, Hub

MAX_PRODUCTS = 200
# Joins read the bag's cards from this cache (which products are in the bag is read fresh): a
# crowd joining at once costs one query for the bag, not three per product per viewer.
CARD_CACHE_S = 1.0

PRODUCTS_IN_BAG = text(
    "SELECT product_id FROM room_products WHERE room_id = :room ORDER BY position, product_id"
)
ADD_TO_BAG = text(
    "INSERT INTO room_products (room_id, product_id, position) "
    "SELECT r.id, p.id, coalesce((SELECT max(position) + 1 FROM room_products WHERE room_id = r.id), 0) "
    "FROM rooms r JOIN products p ON p.merchant_id = r.merchant_id WHERE r.id = :room AND p.id = :product "
    "ON CONFLICT (room_id, product_id) DO UPDATE SET position = room_products.position "
    "RETURNING xmax = 0 AS inserted"
)
REMOVE_FROM_BAG = text(
    "DELETE FROM room_products WHERE room_id = :room AND product_id = :product "
    "AND product_id IS DISTINCT FROM (SELECT pinned_product_id FROM rooms WHERE id = :room) RETURNING 1"
)
BAG_SIZE = text("SELECT count(*) FROM room_products WHERE room_id = :room")


class BagChange(BaseModel):
    product_id: Id


async def bag_cards(session: AsyncSession, room_id: int) -> list[dict[str, Any]]:
    """The bag's product cards in the order they were added."""
    cards = []
    for product_id in (await session.execute(PRODUCTS_IN_BAG, {"room": room_id})).scalars():
        card = await product_card(session, product_id)
        if card is not None:
            cards.append(card)
    return cards


async def put_in_bag(session: AsyncSession, room_id: int, product_id: int) -> bool:
    """Add one of the room's merchant's products to the room's bag; False if it was there."""
    if await session.scalar(BAG_SIZE, {"room": room_id}) >= MAX_PRODUCTS:
        raise AppError("invalid", f"a live's bag holds at most {MAX_PRODUCTS} products")
    row = (await session.execute(ADD_TO_BAG, {"room": room_id, "product": product_id})).one_or_none()
    if row is None:
        raise AppError("not_found", f"product {product_id} is not in this shop")
    return bool(row.inserted)


class Bag:
    """Adds and removes the bag's products (audited) and announces the new bag to the room."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], events: CommerceEvents) -> None:
        self._sessions = sessions
        self._events = events
        self._cards: SharedLookup[int, dict[str, Any] | None] = SharedLookup(self._card, ttl_s=CARD_CACHE_S)

    async def products(self, room_id: int) -> list[dict[str, Any]]:
        """The bag's cards as they are now (stock included)."""
        async with self._sessions() as session:
            return await bag_cards(session, room_id)

    async def products_for_join(self, room_id: int) -> list[dict[str, Any]]:
        """The bag's cards for a join snapshot, each at most `CARD_CACHE_S` old."""
        async with self._sessions() as session:
            product_ids = list((await session.execute(PRODUCTS_IN_BAG, {"room": room_id})).scalars())
        cards = await asyncio.gather(*(self._cards.get(product_id) for product_id in product_ids))
        return [card for card in cards if card is not None]

    async def _card(self, product_id: int) -> dict[str, Any] | None:
        async with self._sessions() as session:
            return await product_card(session, product_id)

    async def add(self, who: Principal, room_id: int, product_id: int) -> list[dict[str, Any]]:
        async with self._sessions.begin() as session:
            merchant_id = await authorize_on(await session.connection(), who, "card.pin", "rooms", room_id)
            await put_in_bag(session, room_id, product_id)
            await self._audit(session, who, "bag.add", merchant_id, room_id, product_id)
            cards = await bag_cards(session, room_id)
        await self.announce(room_id, cards)
        return cards

    async def remove(self, who: Principal, room_id: int, product_id: int) -> list[dict[str, Any]]:
        """Take a product out of the bag; the pinned product stays until it is unpinned."""
        async with self._sessions.begin() as session:
            merchant_id = await authorize_on(await session.connection(), who, "card.pin", "rooms", room_id)
            removed = await session.execute(REMOVE_FROM_BAG, {"room": room_id, "product": product_id})
            if removed.one_or_none() is None:
                raise AppError("not_found", f"product {product_id} is not in the bag, or is pinned")
            await self._audit(session, who, "bag.remove", merchant_id, room_id, product_id)
            cards = await bag_cards(session, room_id)
        await self.announce(room_id, cards)
        return cards

    async def announce(self, room_id: int, cards: list[dict[str, Any]]) -> None:
        await self._events.publish(room_id, BAG_UPDATED, {"products": cards})

    @staticmethod
    async def _audit(
        session: AsyncSession, who: Principal, action: str, merchant_id: int, room_id: int, product_id: int
    ) -> None:
        await audit(
            session,
            who,
            action,
            merchant_id=merchant_id,
            room_id=room_id,
            target_type="product",
            target_id=product_id,
        )

    def register(self, hub: Hub) -> None:
        async def add(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
            """`bag.add` {product_id} → the bag."""
            body = parse(BagChange, data)
            return {"products": await self.add(ctx.principal, ctx.room_id, body.product_id)}

        async def remove(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
            """`bag.remove` {product_id} → the bag."""
            body = parse(BagChange, data)
            return {"products": await self.remove(ctx.principal, ctx.room_id, body.product_id)}

        async def snapshot(room_id: int, principal: Principal) -> list[dict[str, Any]]:
            return await self.products_for_join(room_id)

        hub.command("bag.add", add)
        hub.command("bag.remove", remove)
        hub.snapshot_provider("bag", snapshot)
