"""The Redis broker against a real Valkey, two brokers standing in for two nodes."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as redis
from helpers import wait_for
from valkey_fixture import redis_url, valkey  # noqa: F401

from livecommerce.realtime import protocol
from livecommerce.realtime.broker_redis import RedisBroker
from livecommerce.realtime.resume import Resume, plan_resume

pytestmark = pytest.mark.multinode


@pytest.fixture
async def nodes(redis_url):  # noqa: F811
    brokers = [RedisBroker(redis_url, node_id=f"n{i}", history_limit=5, presence_ttl=1.0) for i in range(2)]
    inboxes: list[list[protocol.BrokerMessage]] = [[], []]
    for broker, inbox in zip(brokers, inboxes, strict=True):
        await broker.start(inbox.append)
    yield brokers, inboxes
    for broker in brokers:
        await broker.close()


async def test_events_from_both_nodes_arrive_everywhere_in_seq_order(nodes):
    (a, b), inboxes = nodes

    async def burst(broker, name):
        for n in range(20):
            head, tail = protocol.event_parts("stock", {"from": name, "n": n}, 1.0)
            await broker.publish_event(7, "commerce", "stock", head, tail)

    await asyncio.gather(burst(a, "a"), burst(b, "b"))
    await wait_for(lambda: all(len(inbox) == 40 for inbox in inboxes))
    for inbox in inboxes:
        assert [m.seq for m in inbox] == list(range(1, 41))
        assert all(orjson.loads(m.payload)["seq"] == m.seq for m in inbox)
    assert [m.payload for m in inboxes[0]] == [m.payload for m in inboxes[1]]
    assert await a.latest_seq(7) == await b.latest_seq(7) == 40


async def test_history_is_bounded_and_resume_decides_from_it(nodes):
    (a, b), _ = nodes
    for n in range(8):
        head, tail = protocol.event_parts("stock", {"n": n}, 1.0)
        await a.publish_event(3, "commerce", "stock", head, tail)
    view = await b.history_after(3, 5)
    assert (view.latest, view.oldest) == (8, 4)
    assert [seq for seq, _ in view.events] == [6, 7, 8]
    assert [orjson.loads(p)["data"]["n"] for _, p in view.events] == [5, 6, 7]
    assert plan_resume(5, view) is Resume.REPLAY
    assert plan_resume(2, await b.history_after(3, 2)) is Resume.SNAPSHOT
    empty = await b.history_after(99, 0)
    assert (empty.latest, empty.oldest, empty.events) == (0, None, [])


async def test_private_events_are_routed_to_the_user(nodes):
    (a, _), inboxes = nodes
    await a.publish_private(3, "order.updated", 42, b'{"type":"order.updated"}')
    await wait_for(lambda: all(inbox for inbox in inboxes))
    for inbox in inboxes:
        assert (inbox[0].to_user, inbox[0].seq, inbox[0].kind) == (42, None, "private")


async def test_presence_merges_nodes_and_a_silent_node_expires(nodes, redis_url):  # noqa: F811
    (a, b), _ = nodes
    await a.presence_join(5, 1, 100.0)
    await b.presence_join(5, 1, 90.0)
    await b.presence_join(5, 2, 95.0)
    assert await a.room_members(5) == {1: 90.0, 2: 95.0}
    await b.presence_leave(5, 2)
    assert await a.room_members(5) == {1: 90.0}
    # b stops refreshing, as a crashed node would: its users vanish after the TTL

    async def only_a_remains() -> bool:
        await a.presence_refresh({5: {1: 100.0}})
        return await a.room_members(5) == {1: 100.0}

    await wait_for(only_a_remains, timeout=10, interval=0.2)


async def test_staff_are_members_on_every_node_but_not_viewers(nodes):
    (a, b), _ = nodes
    await a.presence_join(6, 1, 100.0)
    await a.presence_join(6, 7, 101.0, staff=True)
    await b.presence_join(6, 2, 102.0)
    assert await b.room_members(6) == {1: 100.0, 7: 101.0, 2: 102.0}
    assert await b.room_viewers(6) == 2
    await b.presence_refresh({6: {2: 102.0, 8: 103.0}}, {6: {8}})
    assert await a.room_viewers(6) == 2 and len(await a.room_members(6)) == 4


async def test_refresh_repairs_lost_and_ghost_presence(nodes, redis_url):  # noqa: F811
    (a, _), _ = nodes
    await a.presence_join(5, 1, 100.0)
    client = redis.from_url(redis_url)
    try:
        await client.delete("lc:room:5:presence:n0")
        await client.hset("lc:room:5:presence:n0", "999", "1.0")
    finally:
        await client.aclose()
    assert await a.room_members(5) == {999: 1.0}
    await a.presence_refresh({5: {1: 100.0}})
    assert await a.room_members(5) == {1: 100.0}
    await a.presence_refresh({})
    assert await a.room_members(5) == {}


async def test_claims_are_shared_between_nodes(nodes):
    (a, b), _ = nodes
    assert await a.claim("slow:1:2", 30)
    assert not await b.claim("slow:1:2", 30)
    assert await b.claim("slow:1:3", 30)


async def test_both_nodes_draw_from_one_rate_limit_bucket(nodes):
    (a, b), _ = nodes
    assert [await a.take_token("chat:7", 0.5, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await b.take_token("chat:7", 0.5, 3)
    assert 1.5 < wait <= 2.0  # one token comes back every 2 s, counted from node a's last take
    assert await b.take_token("chat:8", 0.5, 3) == 0.0  # another user's bucket is full


async def test_a_rate_limit_still_holds_on_the_node_while_redis_is_unreachable():
    broker = RedisBroker("redis://127.0.0.1:1", node_id="n0", history_limit=5, presence_ttl=1.0)
    try:
        assert [await broker.take_token("like:1", 1, 2) for _ in range(2)] == [0.0, 0.0]
        assert await broker.take_token("like:1", 1, 2) > 0
    finally:
        await broker.close()
