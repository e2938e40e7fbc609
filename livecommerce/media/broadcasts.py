"""Broadcasts: the database record of each stream session (start, end, key, node, codecs, end
reason), the room's live/offline status, and the `stream.live` / `stream.ended` room events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.accounts import room_for_stream_key
from livecommerce.db.models import Room, RoomStatus, StreamSession
from livecommerce.realtime.hub import Hub


@dataclass(frozen=True)
class Broadcast:
    """What is known about a broadcast when it starts."""

    room_id: int
    stream_key_id: int | None
    publisher_address: str
    user_agent: str


class Broadcasts:
    """This node's broadcasts as the database and the rooms see them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], hub: Hub, node_id: str) -> None:
        self.sessions = sessions
        self.hub = hub
        self.node_id = node_id

    async def stream_key_id(self, key: str, room_id: int) -> int | None:
        """The id of `key` if it is a valid (unrevoked) stream key of the room, else None."""
        async with self.sessions() as session:
            stream_key = await room_for_stream_key(session, key)
        if stream_key is None or stream_key.room_id != room_id:
            return None
        return stream_key.id

    async def record_start(self, broadcast: Broadcast, codec_names: dict[str, str]) -> tuple[int, datetime]:
        """Insert the stream_sessions row and mark the room live; return the row id and start time."""
        async with self.sessions.begin() as session:
            row = StreamSession(
                room_id=broadcast.room_id,
                stream_key_id=broadcast.stream_key_id,
                node_id=self.node_id,
                publisher_address=broadcast.publisher_address[:100],
                user_agent=broadcast.user_agent[:300],
                video_codec=codec_names.get("video"),
                audio_codec=codec_names.get("audio"),
                started_at=datetime.now(UTC),
            )
            session.add(row)
            await session.execute(
                update(Room).where(Room.id == broadcast.room_id).values(status=RoomStatus.LIVE)
            )
            await session.flush()
            return row.id, row.started_at

    async def record_end(self, room_id: int, session_id: int, reason: str) -> bool:
        """End the stream session and mark the room offline, unless the session has ended already
        (when an origin node dies, each of its edges may try): True for the one that ended it."""
        async with self.sessions.begin() as session:
            ended = await session.execute(
                update(StreamSession)
                .where(StreamSession.id == session_id, StreamSession.ended_at.is_(None))
                .values(ended_at=datetime.now(UTC), end_reason=reason)
                .returning(StreamSession.id)
            )
            if ended.first() is None:
                return False
            await session.execute(update(Room).where(Room.id == room_id).values(status=RoomStatus.OFFLINE))
            return True

    async def has_ended(self, session_id: int) -> bool:
        async with self.sessions() as session:
            row = await session.get(StreamSession, session_id)
        return row is None or row.ended_at is not None

    async def announce(self, room_id: int, event: str, data: dict[str, Any]) -> None:
        """Publish a stream event into the room channel through the realtime hub (never dropped)."""
        await self.hub.publish(room_id, event, data, kind="control")
