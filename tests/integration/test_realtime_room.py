"""The room WebSocket against the real server: join, snapshot, chat, cards, resume."""

from __future__ import annotations

import asyncio

import pytest
from helpers import wait_for
from room_client import RoomClient
from sqlalchemy import select

from livecommerce.appkeys import HUB, SESSION_FACTORY
from livecommerce.db.models import AuditLog, ChatMessage
from livecommerce.errors import AppError


async def test_join_sends_versioned_snapshot(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    snapshot = await client.event("snapshot")
    data = snapshot["data"]
    assert data["v"] == 1
    assert data["seq"] == snapshot["seq"] == 0
    assert data["room"]["id"] == world.room_id
    assert data["room"]["status"] == "offline"
    assert "blocked_words" not in data["room"]
    assert data["card"] is None
    assert data["chat"] == []
    assert data["you"]["display_name"] == "Ann"
    assert data["you"]["muted_until"] is None
    await client.event("presence", viewers=1)
    await client.close()


async def test_chat_round_trip_reaches_everyone_and_is_stored(server):
    world = await server.seed()
    _, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await RoomClient.connect(server.room_ws(world.room_id, ann_token))
    bob = await RoomClient.connect(server.room_ws(world.room_id, bob_token))
    await ann.event("snapshot")
    await bob.event("snapshot")
    ack = await ann.ok("chat.send", {"text": "  <b>hello</b>  "})
    for client in (ann, bob):
        message = await client.event("chat.message", text="<b>hello</b>")
        assert message["data"]["display_name"] == "Ann"
        assert message["data"]["id"] == ack["message_id"]
        assert message["seq"] == 1
    async with server.app[SESSION_FACTORY]() as session:
        stored = (await session.scalars(select(ChatMessage))).all()
    assert [m.body for m in stored] == ["<b>hello</b>"]
    late = await RoomClient.connect(server.room_ws(world.room_id, bob_token))
    snapshot = await late.event("snapshot")
    assert [m["text"] for m in snapshot["data"]["chat"]] == ["<b>hello</b>"]
    for client in (ann, bob, late):
        await client.close()


async def test_pinned_card_reaches_viewers_and_late_joiners(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    await viewer.event("snapshot")
    await anchor.ok("card.pin", {"product_id": world.product_id})
    pinned = await viewer.event("card.pinned")
    card = pinned["data"]["card"]
    assert card["product_id"] == world.product_id
    assert card["name"] == "Green tea"
    assert card["skus"][0]["price_minor"] == 1999
    late = await RoomClient.connect(server.room_ws(world.room_id, token))
    assert (await late.event("snapshot"))["data"]["card"]["product_id"] == world.product_id
    await anchor.ok("card.unpin")
    await viewer.event("card.unpinned", product_id=world.product_id)
    refused = await viewer.send("card.pin", {"product_id": world.product_id})
    assert refused["error"]["code"] == "forbidden"
    async with server.app[SESSION_FACTORY]() as session:
        actions = (await session.scalars(select(AuditLog.action).order_by(AuditLog.id))).all()
    assert actions == ["card.pin", "card.unpin"]
    for client in (viewer, anchor, late):
        await client.close()


async def test_resume_replays_exactly_the_missed_events(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    hub = server.app[HUB]
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    await hub.publish(world.room_id, "stock", {"sku_id": 1, "available": 9})
    await client.event("stock", available=9)
    seen = client.last_seq
    await client.close()
    for available in (8, 7, 6):
        await hub.publish(world.room_id, "stock", {"sku_id": 1, "available": available})
    resumed = await RoomClient.connect(server.room_ws(world.room_id, token, since=seen))
    hello = await resumed.event("resumed")
    assert hello["data"] == {"v": 1, "since": seen, "latest": seen + 3, "replayed": 3}
    await resumed.event("stock", available=6)
    await hub.publish(world.room_id, "stock", {"sku_id": 1, "available": 5})
    await resumed.event("stock", available=5)
    stock = [(m["seq"], m["data"]["available"]) for m in resumed.events("stock")]
    assert stock == [(seen + 1, 8), (seen + 2, 7), (seen + 3, 6), (seen + 4, 5)]
    assert resumed.events("snapshot") == []
    await resumed.close()


async def test_snapshot_part_that_fails_is_null_and_the_join_goes_on(server):
    world = await server.seed()
    _, token = await server.guest("Ann")

    async def broken(room_id, principal):
        raise RuntimeError("provider bug")

    async def extra(room_id, principal):
        return {"room": room_id, "for": principal.display_name}

    server.app[HUB].snapshot_provider("broken", broken)
    server.app[HUB].snapshot_provider("extra", extra)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    data = (await client.event("snapshot"))["data"]
    assert data["broken"] is None
    assert data["extra"] == {"room": world.room_id, "for": "Ann"}
    await client.ok("chat.send", {"text": "in anyway"})
    await client.close()


async def test_registered_commands_and_chat_observers_work_for_other_planes(server):
    world = await server.seed()
    ann_id, token = await server.guest("Ann")
    hub = server.app[HUB]
    heard = []

    async def echo(ctx, data):
        if data.get("fail"):
            raise AppError("sold_out", "nothing left")
        return {"room": ctx.room_id, "merchant": ctx.merchant_id, "user": ctx.principal.user_id}

    async def observer(room_id, principal, text):
        heard.append((room_id, principal.user_id, text))

    hub.command("test.echo", echo)
    hub.on_chat(observer)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    assert await client.ok("test.echo") == {
        "room": world.room_id,
        "merchant": world.merchant_id,
        "user": ann_id,
    }
    failed = await client.send("test.echo", {"fail": True})
    assert failed["error"] == {"code": "sold_out", "message": "nothing left"}
    await client.ok("chat.send", {"text": "#win"})
    assert heard == [(world.room_id, ann_id, "#win")]
    await client.close()


async def test_deferred_command_answers_later_while_the_next_commands_are_served(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    hub = server.app[HUB]
    pending = []

    def hold(ctx, data, reply):
        if data.get("fail") == "typed":
            raise AppError("sold_out", "nothing left")
        if data.get("fail") == "crash":
            raise RuntimeError("a bug")
        pending.append((data["n"], reply))

    hub.deferred_command("test.hold", hold)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    first = asyncio.create_task(client.send("test.hold", {"n": 1}))
    second = asyncio.create_task(client.send("test.hold", {"n": 2}))
    # both are read and held at once: neither waits for the other's answer
    await wait_for(lambda: len(pending) == 2)
    assert await client.ok("chat.send", {"text": "still served"})
    pending[1][1]({"n": 2})
    assert (await second)["data"] == {"n": 2}
    assert not first.done()
    pending[0][1](AppError("sold_out", "sold out"))
    assert (await first)["error"]["code"] == "sold_out"
    typed = await client.send("test.hold", {"fail": "typed"})
    assert typed["error"] == {"code": "sold_out", "message": "nothing left"}
    crashed = await client.send("test.hold", {"fail": "crash"})
    assert crashed["error"] == {"code": "internal", "message": "internal error"}
    with pytest.raises(ValueError):
        hub.command("test.hold", hold)
    await client.close()
