"""Moderation over the room socket: delete, mute, ban (also of a guest's new identity), slow mode,
blocked words, rate limits; every action audited and refused to the wrong role."""

from __future__ import annotations

import pytest
from room_client import RoomClient
from sqlalchemy import select

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import AuditLog, ChatMessage


async def _audit_actions(server) -> list[str]:
    async with server.app[SESSION_FACTORY]() as session:
        return list((await session.scalars(select(AuditLog.action).order_by(AuditLog.id))).all())


async def _joined(server, room_id: int, token: str) -> RoomClient:
    client = await RoomClient.connect(server.room_ws(room_id, token))
    await client.event("snapshot")
    return client


async def test_deleted_message_is_removed_everywhere(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    moderator = await _joined(server, world.room_id, world.tokens["moderator"])
    message_id = (await ann.ok("chat.send", {"text": "buy cheap pills"}))["message_id"]
    await moderator.ok("chat.delete", {"message_id": message_id})
    for client in (ann, moderator):
        await client.event("chat.deleted", message_id=message_id)
    async with server.app[SESSION_FACTORY]() as session:
        stored = await session.get(ChatMessage, message_id)
        assert stored.deleted_at is not None
        assert stored.deleted_by == world.user_ids["moderator"]
    again = await moderator.send("chat.delete", {"message_id": message_id})
    assert again["error"]["code"] == "not_found"
    late = await _joined(server, world.room_id, token)
    assert late.events("snapshot")[0]["data"]["chat"] == []
    refused = await ann.send("chat.delete", {"message_id": message_id})
    assert refused["error"]["code"] == "forbidden"
    assert await _audit_actions(server) == ["chat.delete"]
    for client in (ann, moderator, late):
        await client.close()


async def test_muted_user_cannot_chat_until_unmuted(server):
    world = await server.seed()
    ann_id, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    moderator = await _joined(server, world.room_id, world.tokens["moderator"])
    muted = await moderator.ok("user.mute", {"user_id": ann_id, "seconds": 600, "reason": "spam"})
    assert muted["until"] is not None
    await ann.event("user.muted", user_id=ann_id)
    refused = await ann.send("chat.send", {"text": "hello?"})
    assert refused["error"]["code"] == "muted"
    rejoined = await _joined(server, world.room_id, token)
    assert rejoined.events("snapshot")[0]["data"]["you"]["muted_until"] == muted["until"]
    await moderator.ok("user.unmute", {"user_id": ann_id})
    await ann.event("user.unmuted", user_id=ann_id)
    await ann.ok("chat.send", {"text": "back"})
    staff = await moderator.send("user.mute", {"user_id": world.user_ids["anchor"]})
    assert staff["error"]["code"] == "forbidden"
    viewer_try = await ann.send("user.mute", {"user_id": world.user_ids["anchor"], "seconds": 5})
    assert viewer_try["error"]["code"] == "forbidden"
    assert await _audit_actions(server) == ["user.mute", "user.unmute"]
    for client in (ann, moderator, rejoined):
        await client.close()


async def test_banned_guest_is_disconnected_and_cannot_rejoin_under_a_new_name(server):
    world = await server.seed()
    ann_id, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    moderator = await _joined(server, world.room_id, world.tokens["moderator"])
    await moderator.ok("user.ban", {"user_id": ann_id, "reason": "abuse"})
    await moderator.event("user.banned", user_id=ann_id)
    assert await ann.closed() == 4403

    again = await RoomClient.connect(server.room_ws(world.room_id, token))
    assert (await again.wait(lambda m: m["type"] == "error"))["error"]["code"] == "banned"
    assert await again.closed() == 4403

    # a fresh guest identity from the same address is recognised by the ban's address hash
    _, new_token = await server.guest("Definitely not Ann")
    renamed = await RoomClient.connect(server.room_ws(world.room_id, new_token))
    assert await renamed.closed() == 4403
    # a signed-in account from the same address is not refused for the address
    anchor = await _joined(server, world.room_id, world.tokens["anchor"])

    await moderator.ok("user.unban", {"user_id": ann_id})
    back = await _joined(server, world.room_id, token)
    assert await _audit_actions(server) == ["user.ban", "user.unban"]
    for client in (moderator, anchor, back):
        await client.close()


async def test_slow_mode_limits_viewers_but_not_staff(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    moderator = await _joined(server, world.room_id, world.tokens["moderator"])
    assert (await moderator.ok("room.slow_mode", {"seconds": 60})) == {"slow_mode_seconds": 60}
    await ann.event("room.settings", slow_mode_seconds=60)
    await ann.ok("chat.send", {"text": "first"})
    refused = await ann.send("chat.send", {"text": "second"})
    assert refused["error"]["code"] == "slow_mode"
    assert refused["error"]["details"] == {"seconds": 60}
    await moderator.ok("chat.send", {"text": "staff one"})
    await moderator.ok("chat.send", {"text": "staff two"})
    await moderator.ok("room.slow_mode", {"seconds": 0})
    await ann.event("room.settings", slow_mode_seconds=0)
    await ann.ok("chat.send", {"text": "third"})
    bad = await moderator.send("room.slow_mode", {"seconds": -1})
    assert bad["error"]["code"] == "invalid"
    viewer_try = await ann.send("room.slow_mode", {"seconds": 5})
    assert viewer_try["error"]["code"] == "forbidden"
    assert await _audit_actions(server) == ["room.slow_mode", "room.slow_mode"]
    for client in (ann, moderator):
        await client.close()


async def test_blocked_words_refuse_messages_and_stay_staff_only(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    moderator = await _joined(server, world.room_id, world.tokens["moderator"])
    ack = await moderator.ok("room.blocked_words", {"words": ["Scam", " fake  news ", "scam"]})
    assert ack == {"blocked_words": ["scam", "fake news"]}
    await ann.event("room.settings")
    assert (await ann.send("chat.send", {"text": "this is a SCAM!"}))["error"]["code"] == "blocked_content"
    assert (await ann.send("chat.send", {"text": "Fake   News"}))["error"]["code"] == "blocked_content"
    await ann.ok("chat.send", {"text": "scampi is tasty"})
    staff_view = await _joined(server, world.room_id, world.tokens["moderator"])
    assert staff_view.events("snapshot")[0]["data"]["room"]["blocked_words"] == ["scam", "fake news"]
    viewer_view = await _joined(server, world.room_id, token)
    assert "blocked_words" not in viewer_view.events("snapshot")[0]["data"]["room"]
    assert await _audit_actions(server) == ["room.blocked_words"]
    for client in (ann, moderator, staff_view, viewer_view):
        await client.close()


@pytest.mark.parametrize("text", ["", "   ", "x" * 501])
async def test_chat_text_must_be_present_and_within_the_limit(server, text):
    world = await server.seed()
    _, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    assert (await ann.send("chat.send", {"text": text}))["error"]["code"] == "invalid"
    await ann.close()


async def test_chat_rate_limit_is_a_token_bucket_per_user(server, settings):
    world = await server.seed()
    _, token = await server.guest("Ann")
    ann = await _joined(server, world.room_id, token)
    replies = [await ann.send("chat.send", {"text": f"m{i}"}) for i in range(settings.chat_burst + 1)]
    assert [r["type"] for r in replies[:-1]] == ["ack"] * settings.chat_burst
    assert replies[-1]["error"]["code"] == "rate_limited"
    assert replies[-1]["error"]["details"]["retry_after"] > 0
    await ann.close()
