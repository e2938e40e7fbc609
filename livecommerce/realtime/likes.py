"""Likes: viewers' heart taps, batched by the client and counted exactly per room on every node.

The `like` command adds the taps a client gathered since its last send to this node's pending
count for the room. Once per tick the node adds what is pending to the room's counter (one
Redis counter when REDIS_URL is set) and sends the room one `likes` event with the running
total, so a tap storm becomes a few events a second however many people tap, and no tap is
ever left out of the total.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, Field

from livecommerce.auth import Principal
from livecommerce.http import parse
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.hub import CommandContext, Hub
from livecommerce.realtime.limits import UserRateLimit

log = logging.getLogger(__name__)

MAX_TAPS_PER_SEND = 50
SENDS_PER_SECOND = 4.0
SEND_BURST = 8
KIND = "likes"


class LikeTaps(BaseModel):
    count: int = Field(1, ge=1, le=MAX_TAPS_PER_SEND)


class Likes:
    """The `like` command, the per-tick flush of pending taps and the snapshot's like total."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.pending: dict[int, int] = {}
        self.limit = UserRateLimit(
            hub.broker,
            "like",
            SENDS_PER_SECOND,
            SEND_BURST,
            f"at most {SENDS_PER_SECOND:g} like sends per second: batch the taps",
        )

    async def like(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        taps = parse(LikeTaps, data).count
        await self.limit.check(ctx.principal.user_id)
        self.pending[ctx.room_id] = self.pending.get(ctx.room_id, 0) + taps
        return {"count": taps}

    async def flush(self) -> None:
        """Count every room's pending taps and announce each room's new total once."""
        pending, self.pending = self.pending, {}
        for room_id, taps in pending.items():
            try:
                total = await self.hub.broker.add_likes(room_id, taps)
            except Exception:
                # kept for the next tick: taps are never lost to a broker hiccup
                self.pending[room_id] = self.pending.get(room_id, 0) + taps
                log.exception("could not count %s likes in room %s; retrying next tick", taps, room_id)
                continue
            payload = protocol.unsequenced_event(event_types.LIKES, {"total": total}, time.time())
            await self.hub.broker.publish_volatile(room_id, KIND, event_types.LIKES, payload)

    async def total(self, room_id: int, principal: Principal) -> dict[str, int]:
        return {"total": await self.hub.broker.likes(room_id)}


def register(hub: Hub) -> None:
    likes = Likes(hub)
    hub.command("like", likes.like)
    hub.on_tick(likes.flush)
    hub.snapshot_provider("likes", likes.total)
