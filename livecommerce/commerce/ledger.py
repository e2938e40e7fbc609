"""Every statement that moves units: a SKU's stock, a flash sale's units, a buyer's holdings.

The ledger of one SKU (`skus` row):

- `on_hand`: units in the warehouse that are not yet sold. Units leave `on_hand` when an
  order is paid: `sell()` for units that were promised, `sell_free()` for units taken straight
  from free stock (prize orders, a late payment whose reservation was gone).
- `reserved`: units promised and not yet sold: the whole allocation of every flash sale that
  has not ended (units still for sale plus units held by its unpaid orders) and the units held
  by unpaid orders of ended sales. `hold()` promises units, `release()` gives them back.
- `take_back()`: goods of a paid order come back to the warehouse (a cancel before shipping,
  a return the operator chooses to count in): `on_hand` grows, nothing is promised.
- free stock = `on_hand - reserved`: what new sales, restocks and prizes may use; the check
  constraint `0 <= reserved <= on_hand` is the last guard against overselling.

Inside a flash sale, `flash_sales.available` is what taps can still reserve (`take_from_sale`,
`TAKE_FROM_SALE` inside the batch's write), and `allocated - available` is what its orders took:
reserved, paid, or refunded after being paid (an order closed unpaid, even one refunded later,
gave its units back: `return_units`). `sale_buyers` holds each buyer's units per sale, which the
per-viewer limit is checked on (`add_held`). Every change is a conditional statement, never
read-modify-write; the sale's `stock_version` is raised by PostgreSQL itself (migration 0002).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from livecommerce.db.models import SaleState
from livecommerce.errors import AppError

Db = AsyncConnection | AsyncSession

# -- a SKU's stock --------------------------------------------------------------------------------


_HOLD = text(
    "UPDATE skus SET reserved = reserved + :q WHERE id = :id AND on_hand - reserved >= :q "
    "RETURNING merchant_id, price_minor, currency"
)


async def hold(db: Db, sku_id: int, units: int) -> bool:
    """Promise `units` of the SKU's free stock (a sale's allocation, a prize); False if short."""
    return await hold_with_price(db, sku_id, units) is not None


async def hold_with_price(db: Db, sku_id: int, units: int) -> Row[Any] | None:
    """Promise `units` of the SKU's free stock and read its merchant_id, price_minor and currency
    in the same statement (an order at list price is priced by what it held); None if short."""
    return (await db.execute(_HOLD, {"id": sku_id, "q": units})).one_or_none()


async def free_units(db: Db, sku_id: int) -> int:
    """The SKU's free stock now."""
    return await db.scalar(text("SELECT on_hand - reserved FROM skus WHERE id = :id"), {"id": sku_id}) or 0


async def release(db: Db, sku_id: int, units: int) -> None:
    """Give promised units back to the SKU's free stock."""
    await db.execute(
        text("UPDATE skus SET reserved = reserved - :q WHERE id = :id"), {"id": sku_id, "q": units}
    )


async def sell(db: Db, sku_id: int, units: int) -> None:
    """Promised units are paid for: they leave the warehouse ledger."""
    await db.execute(
        text("UPDATE skus SET on_hand = on_hand - :q, reserved = reserved - :q WHERE id = :id"),
        {"id": sku_id, "q": units},
    )


async def sell_free(db: Db, sku_id: int, units: int) -> bool:
    """Sell units straight from free stock (a prize, a late payment whose reservation was gone)."""
    result = await db.execute(
        text("UPDATE skus SET on_hand = on_hand - :q WHERE id = :id AND on_hand - reserved >= :q"),
        {"id": sku_id, "q": units},
    )
    return result.rowcount == 1


async def take_back(db: Db, sku_id: int, units: int) -> None:
    """Units of a paid order come back into the warehouse as free stock."""
    await db.execute(
        text("UPDATE skus SET on_hand = on_hand + :q WHERE id = :id"), {"id": sku_id, "q": units}
    )


async def receive(db: Db, sku_id: int, delta: int) -> dict[str, int]:
    """Count units in (positive) or out (negative); never below what is promised."""
    row = (
        await db.execute(
            text(
                "UPDATE skus SET on_hand = on_hand + :d WHERE id = :id AND on_hand + :d >= reserved "
                "RETURNING on_hand, reserved"
            ),
            {"id": sku_id, "d": delta},
        )
    ).one_or_none()
    if row is None:
        raise AppError("insufficient_stock", "that would leave fewer units on hand than are promised")
    return {"on_hand": row.on_hand, "reserved": row.reserved, "available": row.on_hand - row.reserved}


# -- a sale's units and its buyers' holdings ------------------------------------------------------

TAKE_FROM_SALE = (
    "UPDATE flash_sales SET available = available - CAST(:n AS int), "
    "state = CASE WHEN available = :n THEN 'sold_out'::sale_state ELSE state END "
    "WHERE id = :sale AND :n > 0 AND available >= :n AND state <> 'ended' "
    "AND (NOT CAST(:for_taps AS boolean) OR (state = 'live' AND now() >= starts_at AND now() < ends_at)) "
    "AND sale_price_minor = coalesce(CAST(:expect_price AS bigint), sale_price_minor) "
    "AND per_user_limit = coalesce(CAST(:expect_limit AS int), per_user_limit) "
    "RETURNING room_id, merchant_id, sku_id, sale_price_minor, currency, per_user_limit, available"
)
"""Take `:n` units of sale `:sale`, going sold out at zero. `:for_taps`: only while the sale is
open to taps; `:expect_price` / `:expect_limit` (or NULL): only if the sale still has them. The
batch's write runs it as one of its parts; alone it is `take_from_sale`."""

ADD_HELD = (
    "INSERT INTO sale_buyers (sale_id, user_id, units) "
    "SELECT :sale, h.user_id, h.n FROM unnest(CAST(:buyers AS bigint[]), CAST(:buyer_units AS int[])) "
    "AS h(user_id, n) ON CONFLICT (sale_id, user_id) DO UPDATE SET units = sale_buyers.units + excluded.units "
    "WHERE CAST(:limit AS int) IS NULL OR sale_buyers.units + excluded.units <= :limit "
    "RETURNING sale_buyers.user_id"
)
"""Add units to buyers' holdings in sale `:sale` (buyers in ascending id, the one lock order);
with a `:limit`, a buyer who would exceed it is left out of the returned rows."""

_TAKE_FROM_SALE = text(TAKE_FROM_SALE)
_ADD_HELD = text(ADD_HELD)
_PUT_BACK = text(
    "UPDATE flash_sales f SET available = f.available + r.n, "
    "allocated = f.allocated + CASE WHEN CAST(:allocate AS boolean) THEN r.n ELSE 0 END, "
    "state = CASE WHEN f.state = 'sold_out' THEN 'live'::sale_state ELSE f.state END "
    "FROM unnest(CAST(:sales AS bigint[]), CAST(:units AS int[])) AS r(sale_id, n) "
    "WHERE f.id = r.sale_id AND (NOT :allocate OR f.state <> 'ended') "
    "RETURNING f.id, f.room_id, f.sku_id, f.state, f.available, r.n"
)
_RETURN_HELD = text(
    "UPDATE sale_buyers b SET units = b.units - r.n "
    "FROM unnest(CAST(:sales AS bigint[]), CAST(:users AS bigint[]), CAST(:units AS int[])) AS r(sale_id, user_id, n) "
    "WHERE b.sale_id = r.sale_id AND b.user_id = r.user_id"
)


async def take_from_sale(db: Db, sale_id: int, units: int, *, for_taps: bool) -> Row[Any] | None:
    """Take units of a sale (see TAKE_FROM_SALE); None if it has not got them (or is not open
    to taps, with `for_taps`)."""
    return (
        await db.execute(
            _TAKE_FROM_SALE,
            {"sale": sale_id, "n": units, "for_taps": for_taps, "expect_price": None, "expect_limit": None},
        )
    ).one_or_none()


async def add_held(db: Db, sale_id: int, units: Mapping[int, int], limit: int | None) -> int:
    """Add each buyer's units to their holdings in the sale; returns how many buyers stayed within
    `limit` (all of them without one)."""
    buyers = sorted(units)
    result = await db.execute(
        _ADD_HELD,
        {"sale": sale_id, "buyers": buyers, "buyer_units": [units[b] for b in buyers], "limit": limit},
    )
    return len(result.all())


async def put_back(db: Db, units: Mapping[int, int], *, allocate: bool) -> list[Row[Any]]:
    """Units go back on sale (sale id → units), reopening a sold-out sale. `allocate`: new units
    added to sales that have not ended (a restock) rather than units returned by orders.

    Sales are updated in id order, the same lock order as every other path."""
    sales = sorted(units)
    return list(
        await db.execute(
            _PUT_BACK, {"sales": sales, "units": [units[s] for s in sales], "allocate": allocate}
        )
    )


@dataclass(slots=True)
class Returned:
    """Sales that got units back: their ids, and those that reopened from sold out."""

    sale_ids: list[int]
    reopened: list[tuple[int, int]]


async def return_units(db: Db, orders: list[Row[Any]]) -> Returned:
    """Units of closed unpaid orders go back to their sale (or to the SKU once the sale ended).

    `orders` rows carry sale_id, sku_id, user_id and quantity; they were just closed in this
    transaction.
    """
    per_sale: dict[int, int] = {}
    per_buyer: dict[tuple[int, int], int] = {}
    loose: dict[int, int] = {}
    for order in orders:
        if order.sale_id is None:
            loose[order.sku_id] = loose.get(order.sku_id, 0) + order.quantity
            continue
        per_sale[order.sale_id] = per_sale.get(order.sale_id, 0) + order.quantity
        buyer = (order.sale_id, order.user_id)
        per_buyer[buyer] = per_buyer.get(buyer, 0) + order.quantity
    returned = Returned([], [])
    if per_sale:
        for row in await put_back(db, per_sale, allocate=False):
            returned.sale_ids.append(row.id)
            if row.state == SaleState.ENDED:
                loose[row.sku_id] = loose.get(row.sku_id, 0) + row.n
            elif row.available == row.n:
                returned.reopened.append((row.room_id, row.id))
        buyers = sorted(per_buyer)
        await db.execute(
            _RETURN_HELD,
            {
                "sales": [b[0] for b in buyers],
                "users": [b[1] for b in buyers],
                "units": [per_buyer[b] for b in buyers],
            },
        )
    for sku_id in sorted(loose):
        await release(db, sku_id, loose[sku_id])
    return returned
