"""Order events: every change of an order's status, written in the transaction that makes it
(who, when, why), and read back as an order's history or a buyer's changes since a point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.auth import Principal
from livecommerce.timestamps import iso


@dataclass(frozen=True, slots=True)
class Actor:
    """Who took an action: a user (buyer or staff) or the system (expiry, the payment provider)."""

    user_id: int | None
    role: str

    @classmethod
    def of(cls, who: Principal) -> Actor:
        return cls(who.user_id, who.role.value)


SYSTEM_ACTOR = Actor(None, "system")


@dataclass(frozen=True, slots=True)
class Change:
    """One order's status change, to be recorded."""

    order_id: int
    action: str
    from_status: str | None
    to_status: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


_RECORD = text(
    "INSERT INTO order_events (order_id, action, from_status, to_status, actor_id, actor_role, reason, details) "
    "SELECT e.order_id, e.action, CAST(e.from_status AS order_status), CAST(e.to_status AS order_status), "
    "CAST(:actor AS bigint), :role, e.reason, CAST(e.details AS jsonb) "
    "FROM unnest(CAST(:orders AS bigint[]), CAST(:actions AS text[]), CAST(:froms AS text[]), "
    "CAST(:tos AS text[]), CAST(:reasons AS text[]), CAST(:details AS text[])) "
    "AS e(order_id, action, from_status, to_status, reason, details)"
)


async def record(conn: AsyncConnection, actor: Actor, changes: list[Change]) -> None:
    """Record status changes taken by one actor (one statement, however many orders)."""
    if not changes:
        return
    await conn.execute(
        _RECORD,
        {
            "actor": actor.user_id,
            "role": actor.role,
            "orders": [c.order_id for c in changes],
            "actions": [c.action for c in changes],
            "froms": [c.from_status for c in changes],
            "tos": [c.to_status for c in changes],
            "reasons": [c.reason for c in changes],
            "details": [orjson.dumps(c.details).decode() for c in changes],
        },
    )


EVENT_COLUMNS = (
    "e.id, e.order_id, e.action, e.from_status, e.to_status, e.actor_role, e.reason, e.details, e.at, "
    "a.display_name AS actor_name"
)


def event_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "event_id": row.id,
        "order_id": row.order_id,
        "action": row.action,
        "from_status": None if row.from_status is None else str(row.from_status),
        "to_status": str(row.to_status),
        "by": row.actor_role,
        "by_name": row.actor_name,
        "reason": row.reason,
        "details": row.details,
        "at": iso(row.at),
    }


async def history(conn: AsyncConnection, order_id: int) -> list[dict[str, Any]]:
    """The order's events, oldest first."""
    rows = await conn.execute(
        text(
            f"SELECT {EVENT_COLUMNS} FROM order_events e LEFT JOIN users a ON a.id = e.actor_id "
            "WHERE e.order_id = :order ORDER BY e.id"
        ),
        {"order": order_id},
    )
    return [event_view(row) for row in rows]


async def buyer_changes(conn: AsyncConnection, user_id: int, after: int, limit: int) -> list[dict[str, Any]]:
    """Events of the buyer's orders after event id `after`, oldest first."""
    rows = await conn.execute(
        text(
            f"SELECT {EVENT_COLUMNS} FROM order_events e JOIN orders o ON o.id = e.order_id "
            "LEFT JOIN users a ON a.id = e.actor_id "
            "WHERE o.user_id = :user AND e.id > :after ORDER BY e.id LIMIT :limit"
        ),
        {"user": user_id, "after": after, "limit": limit},
    )
    return [event_view(row) for row in rows]


async def latest_event_id(conn: AsyncConnection, user_id: int) -> int:
    """The newest event id of the buyer's orders (0 without any): where polling starts."""
    value = await conn.scalar(
        text(
            "SELECT max(e.id) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.user_id = :user"
        ),
        {"user": user_id},
    )
    return int(value or 0)


async def asked_from(conn: AsyncConnection, order_id: int) -> str | None:
    """The status the order's open return request was asked from (where a refusal puts it back)."""
    value = await conn.scalar(
        text(
            "SELECT from_status FROM order_events WHERE order_id = :order AND to_status = 'return_requested' "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"order": order_id},
    )
    return None if value is None else str(value)
