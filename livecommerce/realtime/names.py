"""Display names in a room: two guests never show the same name in one room, on any node.

A joining user takes their name in the room (through the broker, so every node agrees). A
guest whose name another user already holds there is shown as "Ann 2", "Ann 3", ... instead;
signed-in accounts keep their own name (the chat's role badge tells staff apart).
"""

from __future__ import annotations

import dataclasses

from livecommerce.auth import Principal
from livecommerce.realtime.broker import Broker

MAX_NAME_LENGTH = 64
NUMBERED_TRIES = 20


def name_key(name: str) -> str:
    """Names that differ only in case or spacing are the same name."""
    return " ".join(name.split()).casefold()


def candidates(name: str, user_id: int) -> list[str]:
    """The name, then numbered variants, then one with the user id (unique by construction)."""
    names = [name]
    for suffix in [*(f" {n}" for n in range(2, NUMBERED_TRIES + 1)), f" #{user_id}"]:
        names.append(name[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix)
    return names


async def take_room_name(broker: Broker, room_id: int, principal: Principal) -> Principal:
    """The principal as the room will show it: a guest's name made unique in the room."""
    if not principal.is_guest:
        await broker.take_name(room_id, principal.user_id, [name_key(principal.display_name)])
        return principal
    names = candidates(principal.display_name, principal.user_id)
    index = await broker.take_name(room_id, principal.user_id, [name_key(n) for n in names])
    # the last candidate ends with the user's own id: taken only by a guest who typed it
    name = names[index] if index >= 0 else names[-1]
    if name == principal.display_name:
        return principal
    return dataclasses.replace(principal, display_name=name)
