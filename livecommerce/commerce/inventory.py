"""Stock per SKU, and the only statements that move it.

The ledger of one SKU (`skus` row):

- `on_hand`: units in the warehouse that are not yet sold. Units leave `on_hand` when an
  order is paid: `sell()` for units that were promised, `sell_free()` for units taken straight
  from free stock (prize orders, a late payment whose reservation was gone).
- `reserved`: units promised and not yet sold: the whole allocation of every flash sale that
  has not ended (units still for sale plus units held by its unpaid orders) and the units held
  by unpaid orders of ended sales. `hold()` promises units, `release()` gives them back.
- free stock = `on_hand - reserved`: what new sales, restocks and prizes may use; the check
  constraint `0 <= reserved <= on_hand` is the last guard against overselling.

Inside a flash sale, `flash_sales.available` is what taps can still reserve, and
`allocated - available` is what its orders took: reserved, paid, or refunded after being
paid (an order closed unpaid, even one refunded later, gave its units back). Every change is
a conditional statement (`... WHERE on_hand - reserved >= :q`), never read-modify-write.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from livecommerce.errors import AppError

Db = AsyncConnection | AsyncSession


async def hold(db: Db, sku_id: int, units: int) -> bool:
    """Promise `units` of the SKU's free stock (a sale's allocation, a prize); False if short."""
    result = await db.execute(
        text("UPDATE skus SET reserved = reserved + :q WHERE id = :id AND on_hand - reserved >= :q"),
        {"id": sku_id, "q": units},
    )
    return result.rowcount == 1


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
    """Sell units straight from free stock (a late payment whose reservation was gone)."""
    result = await db.execute(
        text("UPDATE skus SET on_hand = on_hand - :q WHERE id = :id AND on_hand - reserved >= :q"),
        {"id": sku_id, "q": units},
    )
    return result.rowcount == 1


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
