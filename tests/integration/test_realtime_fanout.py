"""Fan-out under pressure: slow consumers, chat sampling, presence counts, stale resume, shutdown."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from helpers import start_server, wait_for
from room_client import RoomClient

from livecommerce.appkeys import HUB, METRICS
from livecommerce.realtime import protocol


def _sample(server, name: str, labels: dict[str, str]) -> float:
    return server.app[METRICS].get_sample_value(name, labels) or 0.0


async def _server(settings, **changes):
    return await start_server(settings.model_copy(update=changes))


async def test_slow_consumer_is_closed_without_delaying_others(settings):
    server = await _server(settings, ws_send_queue=64, ws_max_frame_bytes=1024)
    try:
        world = await server.seed()
        _, token = await server.guest("Reader")
        fast = await RoomClient.connect(server.room_ws(world.room_id, token))
        await fast.event("snapshot")
        # never reads: websockets stops reading the socket once its small queue is full
        slow = await websockets.connect(server.room_ws(world.room_id, token), max_queue=1, max_size=None)
        hub = server.app[HUB]
        await wait_for(lambda: len(hub.local_connections(world.room_id)) == 2, message="both joined")
        blob = "x" * 32_000
        published = 0
        # each event reaches the fast reader while the slow one's buffers fill up
        while len(hub.local_connections(world.room_id)) == 2 and published < 2000:
            published += 1
            await hub.publish(world.room_id, "stock", {"n": published, "pad": blob})
            await fast.event("stock", n=published)
        assert len(hub.local_connections(world.room_id)) == 1, "the slow consumer was never cut off"
        assert _sample(server, "livecommerce_ws_closes_total", {"code": "4008"}) == 1
        await hub.publish(world.room_id, "stock", {"n": published + 1})
        await fast.event("stock", n=published + 1)
        assert [m["data"]["n"] for m in fast.events("stock")] == list(range(1, published + 2))
        try:
            async for _ in slow:
                pass
        except websockets.ConnectionClosed:
            pass
        assert slow.close_code == protocol.CLOSE_SLOW_CONSUMER
        await fast.close()
    finally:
        await server.runner.cleanup()


async def test_large_room_samples_chat_but_delivers_every_commerce_event(settings):
    server = await _server(settings, coalesce_connections=1, chat_max_per_second=10, realtime_tick_ms=100)
    try:
        world = await server.seed()
        _, token = await server.guest("Ann")
        client = await RoomClient.connect(server.room_ws(world.room_id, token))
        await client.event("snapshot")
        hub = server.app[HUB]
        late = None
        for n in range(60):
            await hub.publish(world.room_id, "chat.message", {"n": n}, kind="chat")
            if n % 10 == 9:
                await hub.publish(world.room_id, "stock", {"n": n})
            if n == 30:
                late = await RoomClient.connect(server.room_ws(world.room_id, token))
            await asyncio.sleep(0.005)
        await client.event("stock", n=59)
        await wait_for(lambda: _sample(server, "livecommerce_ws_chat_sampled_out_total", {}) > 0)
        assert [m["data"]["n"] for m in client.events("stock")] == [9, 19, 29, 39, 49, 59]
        chat = [m["data"]["n"] for m in client.events("chat.message")]
        assert 0 < len(chat) < 60
        assert chat == sorted(chat)
        seqs = [m["seq"] for m in client.messages if m.get("seq") is not None]
        assert seqs == sorted(set(seqs))
        # a viewer joining while events wait in the tick batch gets each event once
        await late.event("stock", n=59)
        late_seqs = [m["seq"] for m in late.messages if m.get("seq") is not None]
        assert late_seqs == sorted(set(late_seqs))
        joined_at = late.events("snapshot")[0]["seq"]
        expected = [m["data"]["n"] for m in client.events("stock") if m["seq"] > joined_at]
        assert [m["data"]["n"] for m in late.events("stock")] == expected
        await client.close()
        await late.close()
    finally:
        await server.runner.cleanup()


async def test_presence_counts_distinct_users_through_joins_and_leaves(server):
    world = await server.seed()
    _, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await RoomClient.connect(server.room_ws(world.room_id, ann_token))
    ann_tab = await RoomClient.connect(server.room_ws(world.room_id, ann_token))
    await ann.event("presence", viewers=1)
    bob = await RoomClient.connect(server.room_ws(world.room_id, bob_token))
    await ann.event("presence", viewers=2)
    assert set(await server.app[HUB].watchers(world.room_id)) == {
        m["data"]["you"]["user_id"] for c in (ann, bob) for m in c.events("snapshot")
    }
    await bob.close()
    await ann_tab.close()
    await wait_for(
        lambda: ann.messages[-1] == {**ann.messages[-1], "type": "presence", "data": {"viewers": 1}}
    )
    await ann.close()


async def test_resume_after_history_moved_on_gets_a_snapshot(settings):
    server = await _server(settings, room_history=10)
    try:
        world = await server.seed()
        _, token = await server.guest("Ann")
        hub = server.app[HUB]
        client = await RoomClient.connect(server.room_ws(world.room_id, token))
        await client.event("snapshot")
        await hub.publish(world.room_id, "stock", {"n": 0})
        await client.event("stock", n=0)
        seen = client.last_seq
        await client.close()
        for n in range(1, 21):
            await hub.publish(world.room_id, "stock", {"n": n})
        stale = await RoomClient.connect(server.room_ws(world.room_id, token, since=seen))
        snapshot = await stale.event("snapshot")
        assert snapshot["seq"] == seen + 20
        assert stale.events("resumed") == []
        future = await RoomClient.connect(server.room_ws(world.room_id, token, since=seen + 1000))
        assert (await future.event("snapshot"))["seq"] == seen + 20
        await hub.publish(world.room_id, "stock", {"n": 21})
        for c in (stale, future):
            await c.event("stock", n=21)
            assert [m["data"]["n"] for m in c.events("stock")] == [21]
            await c.close()
    finally:
        await server.runner.cleanup()


async def test_private_events_reach_only_that_user(server):
    world = await server.seed()
    ann_id, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await RoomClient.connect(server.room_ws(world.room_id, ann_token))
    bob = await RoomClient.connect(server.room_ws(world.room_id, bob_token))
    for c in (ann, bob):
        await c.event("snapshot")
    hub = server.app[HUB]
    assert await hub.publish(world.room_id, "order.updated", {"order_id": 1}, to_user=ann_id) is None
    await hub.publish(world.room_id, "stock", {"n": 1})
    private = await ann.event("order.updated", order_id=1)
    assert private["seq"] is None
    await bob.event("stock", n=1)
    assert bob.events("order.updated") == []
    for c in (ann, bob):
        await c.close()


async def test_shutdown_closes_every_socket_with_going_away(settings):
    server = await _server(settings)
    world = await server.seed()
    _, token = await server.guest("Ann")
    clients = [await RoomClient.connect(server.room_ws(world.room_id, token)) for _ in range(3)]
    for c in clients:
        await c.event("snapshot")
    await server.runner.cleanup()
    codes = await asyncio.gather(*(c.closed() for c in clients))
    assert codes == [protocol.CLOSE_GOING_AWAY] * 3


async def test_event_names_with_spaces_are_refused_before_reaching_the_broker(server):
    world = await server.seed()
    hub = server.app[HUB]
    for type_, kind in (("stock update", "commerce"), ("stock", "big deal"), ("", "commerce")):
        with pytest.raises(ValueError):
            await hub.publish(world.room_id, type_, {}, kind=kind)
    assert await hub.publish(world.room_id, "stock", {}) == 1
