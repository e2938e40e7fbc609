"""Two `livecommerce serve` processes sharing PostgreSQL and a real Valkey: one room across nodes."""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as redis
from helpers import ServerProcess, spawn_server, wait_for
from room_client import RoomClient
from valkey_fixture import redis_url, valkey  # noqa: F401

pytestmark = pytest.mark.multinode


@dataclass
class Cluster:
    nodes: list[ServerProcess]

    def ws(self, node: int, room_id: int, token: str, **params: object) -> str:
        query = "&".join([f"token={token}", *(f"{k}={v}" for k, v in params.items())])
        return "ws" + self.nodes[node].url.removeprefix("http") + f"/ws/rooms/{room_id}?{query}"

    async def join(self, node: int, room_id: int, token: str, **params: object) -> RoomClient:
        client = await RoomClient.connect(self.ws(node, room_id, token, **params))
        await client.wait(lambda m: m["type"] in ("snapshot", "resumed"), timeout=30)
        return client


@contextlib.asynccontextmanager
async def running_cluster(settings, redis_urls: dict[str, str], tmp_path) -> AsyncIterator[Cluster]:
    """One node per entry of `redis_urls` (node name -> the Valkey URL it uses)."""
    env = {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "PRESENCE_INTERVAL_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
    }
    nodes = []
    try:
        for name, url in redis_urls.items():
            node_env = {**env, "REDIS_URL": url, "NODE_ID": f"node-{name}"}
            nodes.append(await asyncio.to_thread(spawn_server, node_env, data_dir=tmp_path / name))
        yield Cluster(nodes)
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)


@pytest.fixture
async def cluster(server, settings, redis_url, tmp_path) -> AsyncIterator[Cluster]:  # noqa: F811
    async with running_cluster(settings, {"a": redis_url, "b": redis_url}, tmp_path) as nodes:
        yield nodes


async def test_chat_cards_and_counts_cross_nodes(server, cluster):
    world = await server.seed()
    _, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await cluster.join(0, world.room_id, ann_token)
    bob = await cluster.join(1, world.room_id, bob_token)
    anchor = await cluster.join(1, world.room_id, world.tokens["anchor"])
    for client in (ann, bob):
        await client.event("presence", viewers=2, timeout=30)
    # the anchor is in the room but not a viewer: the count it joins with already has both
    counted = await anchor.wait(lambda m: m.get("type") in ("snapshot", "presence"), timeout=30)
    assert counted["data"]["viewers"] == 2

    await bob.ok("chat.send", {"text": "from b"})
    await ann.ok("chat.send", {"text": "from a"})
    for client in (ann, bob):
        await client.event("chat.message", text="from b")
        await client.event("chat.message", text="from a")
    await anchor.ok("card.pin", {"product_id": world.product_id})
    pinned = await ann.event("card.pinned")
    assert pinned["data"]["card"]["product_id"] == world.product_id
    await bob.event("card.pinned")
    for client in (ann, bob):  # pinning a product puts it in the live's bag
        await client.event("bag.updated")

    # one sequence across both nodes: every client sees the same events in the same order
    order = {
        c: [(m["seq"], m["type"]) for m in c.messages if m.get("seq") and m["type"] != "snapshot"]
        for c in (ann, bob)
    }
    assert order[ann] == order[bob]
    assert [seq for seq, _ in order[ann]] == sorted({seq for seq, _ in order[ann]})

    await bob.close()
    await ann.event("presence", viewers=2, timeout=30)
    for client in (ann, anchor):
        await client.close()


async def test_moderation_applies_on_every_node(server, cluster):
    world = await server.seed()
    ann_id, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await cluster.join(1, world.room_id, ann_token)
    bob = await cluster.join(0, world.room_id, bob_token)
    moderator = await cluster.join(0, world.room_id, world.tokens["moderator"])

    message_id = (await ann.ok("chat.send", {"text": "spam"}))["message_id"]
    await moderator.ok("chat.delete", {"message_id": message_id})
    await ann.event("chat.deleted", message_id=message_id)
    await bob.event("chat.deleted", message_id=message_id)

    await moderator.ok("room.slow_mode", {"seconds": 120})
    await bob.event("room.settings", slow_mode_seconds=120)
    await bob.ok("chat.send", {"text": "one"})
    assert (await bob.send("chat.send", {"text": "two"}))["error"]["code"] == "slow_mode"
    await moderator.ok("room.slow_mode", {"seconds": 0})
    await ann.event("room.settings", slow_mode_seconds=0)
    await bob.event("room.settings", slow_mode_seconds=0)

    await moderator.ok("user.mute", {"user_id": ann_id, "seconds": 300})
    assert (await ann.send("chat.send", {"text": "muted?"}))["error"]["code"] == "muted"
    await moderator.ok("user.unmute", {"user_id": ann_id})

    await moderator.ok("user.ban", {"user_id": ann_id})
    assert await ann.closed(timeout=30) == 4403
    for node in (0, 1):
        again = await RoomClient.connect(cluster.ws(node, world.room_id, ann_token))
        assert await again.closed(timeout=30) == 4403
    for client in (bob, moderator):
        await client.close()


async def test_resume_on_the_other_node_replays_exactly_what_was_missed(server, cluster):
    world = await server.seed()
    _, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await cluster.join(0, world.room_id, ann_token)
    bob = await cluster.join(1, world.room_id, bob_token)
    await bob.ok("chat.send", {"text": "seen"})
    await ann.event("chat.message", text="seen")
    since = ann.last_seq
    await ann.close()
    for text in ("missed 1", "missed 2", "missed 3"):
        await bob.ok("chat.send", {"text": text})
    await bob.event("chat.message", text="missed 3")
    resumed = await cluster.join(1, world.room_id, ann_token, since=since)
    hello = resumed.events("resumed")[0]
    assert hello["data"]["replayed"] == 3
    await resumed.event("chat.message", text="missed 3")
    assert [m["data"]["text"] for m in resumed.events("chat.message")] == ["missed 1", "missed 2", "missed 3"]
    assert [m["seq"] for m in resumed.events("chat.message")] == [since + 1, since + 2, since + 3]
    for client in (bob, resumed):
        await client.close()


async def test_a_crashed_nodes_viewers_leave_the_count(server, cluster):
    world = await server.seed()
    _, ann_token = await server.guest("Ann")
    _, bob_token = await server.guest("Bob")
    ann = await cluster.join(0, world.room_id, ann_token)
    bob = await cluster.join(1, world.room_id, bob_token)
    await ann.event("presence", viewers=2, timeout=30)
    cluster.nodes[1].stop(signal.SIGKILL)
    await bob.closed(timeout=30)
    await wait_for(
        lambda: ann.messages[-1].get("type") == "presence" and ann.messages[-1]["data"]["viewers"] == 1,
        timeout=60,
        message="the crashed node's viewer to expire",
    )
    await ann.close()


async def test_a_client_hopping_between_nodes_cannot_chat_faster_than_the_limit(server, cluster):
    """CHAT_BURST (5) at once and CHAT_RATE_PER_SECOND (1) after that, per user over the cluster:
    a new connection on the other node does not bring a fresh budget."""
    world = await server.seed()
    _, token = await server.guest("Hopper")
    accepted = 0
    started = time.monotonic()
    for node in (0, 1, 0):
        client = await cluster.join(node, world.room_id, token)
        for n in range(5):
            reply = await client.send("chat.send", {"text": f"node {node} #{n}"})
            if reply["type"] == "ack":
                accepted += 1
            else:
                assert (
                    reply["error"]["code"] == "rate_limited" and reply["error"]["details"]["retry_after"] > 0
                )
        await client.close()
    elapsed = time.monotonic() - started
    # per-node budgets would take 5 on each node (10) and more as node a's refills
    assert accepted <= 5 + math.floor(elapsed * 1) + 1, (accepted, elapsed)


class ValkeyLink:
    """A node's own Valkey account, so a test can cut that node off (and let it back) alone."""

    def __init__(self, url: str, user: str) -> None:
        self.admin = redis.from_url(url)
        self.user = user
        address = urlsplit(url)
        self.url = urlunsplit(address._replace(netloc=f"{user}:{PASSWORD}@{address.hostname}:{address.port}"))

    async def create(self) -> None:
        await self.admin.acl_setuser(
            self.user,
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )

    async def cut(self) -> None:
        """Refuse the node's new connections and close its open ones (its subscription too)."""
        await self.admin.acl_setuser(self.user, enabled=False)
        await self.admin.execute_command("CLIENT", "KILL", "USER", self.user)

    async def restore(self) -> None:
        await self.admin.acl_setuser(self.user, enabled=True)


PASSWORD = "node-secret"


async def test_events_published_while_a_nodes_subscription_is_cut_reach_its_clients_in_order_once(
    server,
    settings,
    redis_url,  # noqa: F811
    tmp_path,
):
    link = ValkeyLink(redis_url, "node-b")
    await link.create()
    async with running_cluster(settings, {"a": redis_url, "b": link.url}, tmp_path) as cluster:
        world = await server.seed()
        _, ann_token = await server.guest("Ann")
        ann = await cluster.join(1, world.room_id, ann_token)
        anchor = await cluster.join(0, world.room_id, world.tokens["anchor"])
        await anchor.ok("chat.send", {"text": "before"})
        await ann.event("chat.message", text="before")

        await link.cut()
        texts = [f"while cut {n}" for n in range(3)]
        for text in texts:
            await anchor.ok("chat.send", {"text": text})
        await anchor.event("chat.message", text=texts[-1])
        assert not [m for m in ann.events("chat.message") if m["data"]["text"] in texts]
        await link.restore()
        await ann.event("chat.message", text=texts[-1], timeout=30)
        await anchor.ok("chat.send", {"text": "after"})
        await ann.event("chat.message", text="after", timeout=30)

        chat = ann.events("chat.message")
        assert [m["data"]["text"] for m in chat] == ["before", *texts, "after"]
        seqs = [m["seq"] for m in chat]
        assert seqs == sorted(set(seqs))
        assert not ann.events("resumed") and ann.close_code is None  # the same socket throughout
        for client in (ann, anchor):
            await client.close()
    await link.admin.aclose()
