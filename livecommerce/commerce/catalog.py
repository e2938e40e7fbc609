"""The catalog: products and their SKUs, created and repriced by the merchant's operators, and the
product card viewers see (name, image, prices and stock left per SKU, and each SKU's running
flash sale: sale price, units left, state and countdown)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.ownership import authorize_on
from livecommerce.commerce.sales import open_sales_of_product
from livecommerce.db.models import Product, Room, Sku
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import CARD_PINNED

INSERT_PRODUCT = text(
    "INSERT INTO products (merchant_id, name, description, image_url) "
    "SELECT id, :name, :description, :image FROM merchants WHERE id = :m RETURNING id"
)
INSERT_SKU = text(
    "INSERT INTO skus (product_id, merchant_id, code, name, price_minor, currency, on_hand) "
    "SELECT :p, m.id, :code, :name, :price, m.currency, :n FROM merchants m WHERE m.id = :m RETURNING id"
)


async def product_card(session: AsyncSession, product_id: int) -> dict[str, Any] | None:
    """The card for a pinned product, or None if it does not exist."""
    product = await session.get(Product, product_id)
    if product is None:
        return None
    skus = (await session.scalars(select(Sku).where(Sku.product_id == product_id).order_by(Sku.id))).all()
    sales = await open_sales_of_product(session, product_id)
    return {
        "product_id": product.id,
        "merchant_id": product.merchant_id,
        "name": product.name,
        "description": product.description,
        "image_url": product.image_url,
        "skus": [
            {
                "sku_id": sku.id,
                "code": sku.code,
                "name": sku.name,
                "price_minor": sku.price_minor,
                "currency": sku.currency,
                "available": sku.on_hand - sku.reserved,
                "version": sku.stock_version,
                "sale": sales.get(sku.id),
            }
            for sku in skus
        ],
    }


class Catalog:
    """Creates products and SKUs and changes a SKU's regular price, each with its audit row."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], events: CommerceEvents) -> None:
        self._sessions = sessions
        self._events = events

    async def create_product(
        self, who: Principal, merchant_id: int, *, name: str, description: str, image_url: str
    ) -> int:
        authorize(who, "inventory.manage", merchant_id)
        async with self._sessions.begin() as session:
            conn = await session.connection()
            product_id = await conn.scalar(
                INSERT_PRODUCT,
                {"m": merchant_id, "name": name, "description": description, "image": image_url},
            )
            if product_id is None:
                raise AppError("not_found", "no such merchant")
            await audit(
                session,
                who,
                "product.create",
                merchant_id=merchant_id,
                target_type="product",
                target_id=product_id,
            )
        return product_id

    async def create_sku(
        self, who: Principal, product_id: int, *, code: str, name: str, price_minor: int, on_hand: int
    ) -> int:
        async with self._sessions.begin() as session:
            conn = await session.connection()
            merchant_id = await authorize_on(conn, who, "inventory.manage", "products", product_id)
            try:
                async with conn.begin_nested():
                    sku_id = await conn.scalar(
                        INSERT_SKU,
                        {
                            "p": product_id,
                            "m": merchant_id,
                            "code": code,
                            "name": name,
                            "price": price_minor,
                            "n": on_hand,
                        },
                    )
            except IntegrityError:
                raise AppError("already_exists", f"the SKU code {code!r} is taken") from None
            await audit(
                session,
                who,
                "sku.create",
                merchant_id=merchant_id,
                target_type="sku",
                target_id=sku_id,
                details={"code": code, "on_hand": on_hand},
            )
        return sku_id

    async def reprice_sku(self, who: Principal, sku_id: int, price_minor: int) -> int:
        """Change the SKU's regular price; rooms with its product pinned get the card again.
        Returns the previous price."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            merchant_id = await authorize_on(conn, who, "inventory.manage", "skus", sku_id)
            sku = await session.get_one(Sku, sku_id, with_for_update=True)
            previous = sku.price_minor
            sku.price_minor = price_minor
            await audit(
                session,
                who,
                "sku.price",
                merchant_id=merchant_id,
                target_type="sku",
                target_id=sku_id,
                details={"from": previous, "to": price_minor},
            )
            await session.flush()
            card = await product_card(session, sku.product_id)
            rooms = (
                await session.scalars(select(Room.id).where(Room.pinned_product_id == sku.product_id))
            ).all()
        for room_id in rooms:
            await self._events.publish(room_id, CARD_PINNED, {"card": card})
        return previous
