"""Buying at list price: a SKU of a product in the live's bag, reserved from the SKU's free stock
in one short transaction (conditional hold, order row, the key's first answer).

Units held this way are `reserved` on the SKU like a sale's (see `ledger`): paying sells them,
an expired or cancelled order releases them.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.commerce import ledger
from livecommerce.commerce.batching import Outcome, Tap
from livecommerce.commerce.order_views import order_view
from livecommerce.commerce.reservation import (
    INSERT_ORDERS,
    PRIOR_ANSWERS,
    Answer,
    BatchResult,
    record_answer,
    replay,
)
from livecommerce.errors import AppError

IN_BAG = text(
    "SELECT 1 FROM skus s JOIN room_products b ON b.product_id = s.product_id "
    "WHERE s.id = :sku AND b.room_id = :room"
)


async def reserve_at_list_price(
    conn: AsyncConnection, room_id: int, sku_id: int, tap: Tap, ttl_s: int
) -> BatchResult:
    """Decide one tap on a SKU at its list price, inside the caller's transaction.

    The answer is `reserved`, `sold_out` (nothing left), `insufficient_stock` (fewer left than
    asked) or, for a key already used for another purchase, `idempotency_key_reused`; a key sent
    again gets its first answer. A SKU whose product is not in the room's bag is refused
    (`not_offered`) and nothing is recorded.
    """
    prior = (await conn.execute(PRIOR_ANSWERS, {"users": [tap.user_id], "keys": [tap.key]})).one_or_none()
    if prior is not None:
        return BatchResult([replay(prior, tap, sku_id=sku_id)], room_id, False, 0)
    if await conn.scalar(IN_BAG, {"sku": sku_id, "room": room_id}) is None:
        raise AppError("not_offered", "this product is not offered in this live")
    held = await ledger.hold_with_price(conn, sku_id, tap.quantity)
    if held is None:
        free = await ledger.free_units(conn, sku_id)
        outcome = Outcome.SOLD_OUT if free <= 0 else Outcome.INSUFFICIENT_STOCK
        await record_answer(conn, tap, outcome, None, sku_id=sku_id, room_id=room_id)
        return BatchResult([Answer(outcome)], room_id, False, 0)
    row = (
        await conn.execute(
            INSERT_ORDERS,
            {
                "merchant": held.merchant_id,
                "room": room_id,
                "sale": None,
                "sku": sku_id,
                "price": held.price_minor,
                "currency": held.currency,
                "ttl": ttl_s,
                "users": [tap.user_id],
                "keys": [tap.key],
                "qs": [tap.quantity],
            },
        )
    ).one()
    await record_answer(conn, tap, Outcome.RESERVED, row.id, sku_id=sku_id, room_id=room_id)
    return BatchResult([Answer(Outcome.RESERVED, order_view(row))], room_id, False, tap.quantity)
