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
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.auth import Principal
from livecommerce.db.models import Room, RoomFollow
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.hub import HUB, Hub

routes = web.RouteTableDef()


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


async def _set_following(request: web.Request, follow: bool) -> web.Response:
    room_id = int_param(request, "room_id")
    who = principal(request)
    if who.is_guest:
        raise AppError("forbidden", "sign in to follow this room")
    async with request.app[SESSION_FACTORY].begin() as session:
        if await session.get(Room, room_id) is None:
            raise AppError("not_found", f"room {room_id} does not exist")
        if follow:
            await session.execute(
                insert(RoomFollow).values(room_id=room_id, user_id=who.user_id).on_conflict_do_nothing()
            )
        else:
            await session.execute(
                delete(RoomFollow).where(RoomFollow.room_id == room_id, RoomFollow.user_id == who.user_id)
            )
        state = await follow_state(session, room_id, who.user_id)
    payload = protocol.unsequenced_event(
        event_types.FOLLOWERS, {"followers": state["followers"]}, time.time()
    )
    await request.app[HUB].broker.publish_volatile(room_id, "followers", event_types.FOLLOWERS, payload)
    return json_response({"room_id": room_id, **state})


@routes.post("/api/rooms/{room_id}/follow")
async def follow_room(request: web.Request) -> web.Response:
    return await _set_following(request, True)


@routes.delete("/api/rooms/{room_id}/follow")
async def unfollow_room(request: web.Request) -> web.Response:
    return await _set_following(request, False)


def register(hub: Hub) -> None:
    async def snapshot_part(room_id: int, who: Principal) -> dict[str, Any]:
        async with hub.app[SESSION_FACTORY]() as session:
            return await follow_state(session, room_id, None if who.is_guest else who.user_id)

    hub.snapshot_provider("follow", snapshot_part)
