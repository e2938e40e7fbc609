"""Following a room: signed-in viewers follow or unfollow it; the count is in the join snapshot
and each change sends the room an unsequenced `followers` event with the new count.

`POST /api/rooms/{room_id}/follow` and `DELETE` of the same path, both idempotent. Guests may
not follow: a follow is remembered with an account, so they are asked to sign in.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal
from livecommerce.db.models import Room, RoomFollow
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.hub import Hub


async def follow_state(session: AsyncSession, room_id: int, user_id: int | None) -> dict[str, Any]:
    """The room's follower count and whether this user follows it."""
    followers = await session.scalar(select(func.count()).where(RoomFollow.room_id == room_id))
    following = user_id is not None and (
        await session.scalar(
            select(RoomFollow.user_id).where(RoomFollow.room_id == room_id, RoomFollow.user_id == user_id)
        )
        is not None
    )
    return {"followers": followers or 0, "following": following}


async def set_following(session: AsyncSession, room_id: int, user_id: int, follow: bool) -> None:
    if await session.get(Room, room_id) is None:
        raise AppError("not_found", f"room {room_id} does not exist")
    if follow:
        await session.execute(
            insert(RoomFollow).values(room_id=room_id, user_id=user_id).on_conflict_do_nothing()
        )
    else:
        await session.execute(
            delete(RoomFollow).where(RoomFollow.room_id == room_id, RoomFollow.user_id == user_id)
        )


class Follows:
    """Who follows which room: the HTTP endpoints, the snapshot part and the `followers` event."""

    def __init__(self, hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.hub = hub
        self.sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/rooms/{room_id}/follow", self.follow),
            web.delete("/api/rooms/{room_id}/follow", self.unfollow),
        ]

    async def follow(self, request: web.Request) -> web.Response:
        return await self._set(request, True)

    async def unfollow(self, request: web.Request) -> web.Response:
        return await self._set(request, False)

    async def _set(self, request: web.Request, follow: bool) -> web.Response:
        room_id = int_param(request, "room_id")
        who = principal(request)
        if who.is_guest:
            raise AppError("forbidden", "sign in to follow this room")
        async with self.sessions.begin() as session:
            await set_following(session, room_id, who.user_id, follow)
            state = await follow_state(session, room_id, who.user_id)
        payload = protocol.unsequenced_event(
            event_types.FOLLOWERS, {"followers": state["followers"]}, time.time()
        )
        await self.hub.broker.publish_volatile(room_id, "followers", event_types.FOLLOWERS, payload)
        return json_response({"room_id": room_id, **state})

    async def snapshot_part(self, room_id: int, who: Principal) -> dict[str, Any]:
        async with self.sessions() as session:
            return await follow_state(session, room_id, None if who.is_guest else who.user_id)


def register(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> Follows:
    follows = Follows(hub, sessions)
    hub.snapshot_provider("follow", follows.snapshot_part)
    return follows
