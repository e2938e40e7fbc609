"""Which merchant owns a row: the check every operator action makes before it changes anything."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.auth import Principal, authorize
from livecommerce.errors import AppError

OWNED_TABLES = {"products": "product", "skus": "SKU", "rooms": "room", "flash_sales": "sale"}


async def authorize_on(conn: AsyncConnection, who: Principal, action: str, table: str, row_id: int) -> int:
    """Authorize an action on one row of a merchant-owned table; return the row's merchant."""
    noun = OWNED_TABLES[table]  # only these tables, never a name from the request
    merchant_id = await conn.scalar(text(f"SELECT merchant_id FROM {table} WHERE id = :id"), {"id": row_id})
    if merchant_id is None:
        raise AppError("not_found", f"no such {noun}")
    authorize(who, action, merchant_id)
    return merchant_id


def own_merchant(who: Principal, requested: int | None) -> int:
    """The merchant an operator acts for: the one named, or the operator's own."""
    merchant_id = requested if requested is not None else who.merchant_id
    if merchant_id is None:
        raise AppError("invalid", "merchant_id: required for accounts outside a merchant")
    return merchant_id
