"""The room's own state in the join snapshot: title, live or not, slow mode, blocked words for staff."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, may
from livecommerce.db.models import Room
from livecommerce.realtime.hub import Hub


def register(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
    async def room_state(room_id: int, principal: Principal) -> dict[str, Any]:
        async with sessions() as session:
            room = await session.get(Room, room_id)
        assert room is not None  # the socket joined only after finding the room
        state: dict[str, Any] = {
            "id": room.id,
            "merchant_id": room.merchant_id,
            "title": room.title,
            "status": room.status.value,
            "slow_mode_seconds": room.slow_mode_seconds,
        }
        if may(principal, "room.moderate", room.merchant_id):
            state["blocked_words"] = list(room.blocked_words)
        return state

    hub.snapshot_provider("room", room_state)
