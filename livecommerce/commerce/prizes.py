"""Prize orders for draw winners (zero price, one unit straight from stock on hand), and the
"who ordered in this room since T" question that draws ask of the commerce plane."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.commerce import ledger
from livecommerce.commerce.lifecycle import SOLD_STATUSES
from livecommerce.db.models import Order, OrderKind, OrderStatus, Sku
from livecommerce.errors import AppError


class Shipping(BaseModel):
    """Where a prize goes; stored on the order as given (after trimming)."""

    name: str = Field(min_length=1, max_length=100)
    line1: str = Field(min_length=1, max_length=200)
    line2: str = Field("", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    phone: str = Field("", max_length=40)

    model_config = {"str_strip_whitespace": True, "extra": "forbid"}


def prize_key(draw_id: int, rank: int) -> str:
    """The order's idempotency key: one prize order per draw and rank, however often claimed."""
    return f"prize:{draw_id}:{rank}"


async def create_prize_order(
    session: AsyncSession,
    *,
    draw_id: int,
    rank: int,
    user_id: int,
    room_id: int,
    sku_id: int,
    shipping: Shipping,
    now: datetime,
) -> Order:
    """Sell one unit from free stock (never units promised to buyers) and record a paid,
    zero-price order of kind `prize`. The caller holds the winner's row lock, so a repeated
    claim finds the existing order instead of reaching here."""
    existing = await session.scalar(
        select(Order).where(Order.user_id == user_id, Order.idempotency_key == prize_key(draw_id, rank))
    )
    if existing is not None:
        return existing
    sku = await session.get(Sku, sku_id)
    if sku is None or not await ledger.sell_free(session, sku_id, 1):
        raise AppError("sold_out", "the prize is out of stock; the shop will contact you")
    order = Order(
        merchant_id=sku.merchant_id,
        room_id=room_id,
        sku_id=sku_id,
        user_id=user_id,
        kind=OrderKind.PRIZE,
        status=OrderStatus.PAID,
        quantity=1,
        unit_price_minor=0,
        amount_minor=0,
        currency=sku.currency,
        idempotency_key=prize_key(draw_id, rank),
        shipping=shipping.model_dump(),
        paid_at=now,
    )
    session.add(order)
    await session.flush()
    return order


async def buyers_since(session: AsyncSession, room_id: int, since: datetime) -> list[int]:
    """User ids of everyone with a reserved or paid (sold) sale order in the room since T."""
    rows = await session.scalars(
        select(Order.user_id)
        .where(
            Order.room_id == room_id,
            Order.kind == OrderKind.SALE,
            Order.status.in_(("reserved", *SOLD_STATUSES)),
            Order.created_at >= since,
        )
        .distinct()
    )
    return [int(user_id) for user_id in rows.all()]


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "kind": order.kind.value,
        "status": order.status.value,
        "sku_id": order.sku_id,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
    }
