"""Checkout: the buyer's details go onto a reserved order as a copy of what was given then, and
are remembered (when the buyer asks) to fill in the next checkout; the buyer can read and delete
what is remembered. Deleting it leaves the orders' copies as they are."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.auth import Principal, authorize
from livecommerce.commerce.buyer_details import read_details
from livecommerce.errors import AppError

SAVED = text("SELECT details, updated_at FROM buyer_details WHERE user_id = :user")
REMEMBER = text(
    "INSERT INTO buyer_details (user_id, details) VALUES (:user, CAST(:details AS jsonb)) "
    "ON CONFLICT (user_id) DO UPDATE SET details = excluded.details, updated_at = now()"
)
FORGET = text("DELETE FROM buyer_details WHERE user_id = :user RETURNING 1")
SHIP_TO = text(
    "UPDATE orders SET shipping = CAST(:details AS jsonb), language = COALESCE(:language, language) "
    "WHERE id = :id AND user_id = :user AND status = 'reserved' RETURNING id"
)
ORDER_STATUS = text("SELECT status FROM orders WHERE id = :id AND user_id = :user")


class Checkout:
    """The buyer's side of checkout: details on an order, and the remembered details."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def saved(self, who: Principal) -> dict[str, Any] | None:
        """What the buyer asked to be remembered, or None."""
        authorize(who, "order.place")
        async with self._engine.connect() as conn:
            row = (await conn.execute(SAVED, {"user": who.user_id})).one_or_none()
        return None if row is None else row.details

    async def remember(self, who: Principal, raw: Any) -> dict[str, str]:
        authorize(who, "order.place")
        details = read_details(raw)
        async with self._engine.begin() as conn:
            await conn.execute(REMEMBER, {"user": who.user_id, "details": _json(details)})
        return details

    async def forget(self, who: Principal) -> bool:
        """Delete the remembered details; True if there were any."""
        authorize(who, "order.place")
        async with self._engine.begin() as conn:
            return (await conn.execute(FORGET, {"user": who.user_id})).one_or_none() is not None

    async def ship_to(
        self, who: Principal, order_id: int, raw: Any, *, remember: bool, language: str | None
    ) -> dict[str, str]:
        """Put the buyer's details on their reserved order (a copy: later changes to the remembered
        details leave it as it is), and remember them for next time if asked, together. The
        buyer's `language`, when given, is the language of mail about the order."""
        authorize(who, "order.place")
        details = read_details(raw)
        async with self._engine.begin() as conn:
            shipped = await conn.execute(
                SHIP_TO,
                {"id": order_id, "user": who.user_id, "details": _json(details), "language": language},
            )
            if shipped.one_or_none() is None:
                status = await conn.scalar(ORDER_STATUS, {"id": order_id, "user": who.user_id})
                if status is None:
                    raise AppError("not_found", "no such order")
                raise AppError("conflict", f"the order is {status}; its details can no longer change")
            if remember:
                await conn.execute(REMEMBER, {"user": who.user_id, "details": _json(details)})
        return details


def _json(details: dict[str, str]) -> str:
    return orjson.dumps(details).decode()
