"""Rooms as the realtime plane reads them: the settings a node caches to check commands
(`RoomInfo`), and the room's own part of the join snapshot (title, live or not, slow mode,
blocked words for staff)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, may
from livecommerce.db.models import Room
from livecommerce.errors import AppError


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """What a node caches about a room to check commands; refreshed on `room.settings`."""

    room_id: int
    merchant_id: int
    slow_mode_seconds: int
    blocked_words: tuple[str, ...]


class RoomDirectory:
    """This node's cache of rooms' settings, loaded from the database on first use."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._cached: dict[int, RoomInfo] = {}

    async def info(self, room_id: int) -> RoomInfo:
        """The room's cached settings; `not_found` if there is no such room."""
        info = self._cached.get(room_id)
        if info is None:
            async with self.sessions() as session:
                room = await session.scalar(select(Room).where(Room.id == room_id))
            if room is None:
                raise AppError("not_found", f"room {room_id} does not exist")
            info = RoomInfo(room.id, room.merchant_id, room.slow_mode_seconds, tuple(room.blocked_words))
            self._cached[room_id] = info
        return info

    def forget(self, room_id: int) -> None:
        self._cached.pop(room_id, None)

    async def state(self, room_id: int, principal: Principal) -> dict[str, Any]:
        """The room's part of the join snapshot."""
        async with self.sessions() as session:
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
