"""Presence: who is in each room across every node. This node's joins and leaves reach the
broker in the order they happened; its whole membership is refreshed every interval (which also
repairs what the broker lost), and room members and viewer counts are read back from the broker. Staff (anchors, operators,
merchants) are members (draws see them) but never counted as viewers."""

from __future__ import annotations

import asyncio

from livecommerce.realtime.broker import Broker


class Presence:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        # presence writes go to the broker in the order joins and leaves happened
        self._order = asyncio.Lock()

    async def join(self, room_id: int, user_id: int, joined_at: float, *, staff: bool = False) -> None:
        async with self._order:
            await self.broker.presence_join(room_id, user_id, joined_at, staff=staff)

    async def leave(self, room_id: int, user_id: int) -> None:
        async with self._order:
            await self.broker.presence_leave(room_id, user_id)

    async def refresh(self, members: dict[int, dict[int, float]], staff: dict[int, set[int]]) -> None:
        """Heartbeat with this node's whole presence: room id -> user id -> joined at, and
        room id -> the staff among them."""
        async with self._order:
            await self.broker.presence_refresh(members, staff)

    async def members(self, room_id: int) -> dict[int, float]:
        """User id -> when that user joined the room (epoch seconds), across every node."""
        return await self.broker.room_members(room_id)

    async def viewers(self, room_id: int) -> int:
        """Viewers and guests in the room; the studio and the console (staff) are not watching."""
        return await self.broker.room_viewers(room_id)
