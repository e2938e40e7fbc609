"""Draws across real `livecommerce serve` processes: a restart in the middle of a draw, and a
storm of entries through real WebSockets on two nodes sharing PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import aiohttp
import asyncpg
import pytest
from helpers import LiveServer, ServerProcess, World, spawn_server, start_server, wait_for
from room_client import RoomClient
from valkey_fixture import redis_url, valkey  # noqa: F401

from livecommerce import accounts
from livecommerce.appkeys import SESSION_FACTORY, TOKENS
from livecommerce.draws.verification import verify

pytestmark = pytest.mark.multinode


async def seeded(settings, guests: int) -> tuple[World, list[tuple[int, str]]]:
    """Seed the database through an in-process app that is stopped again before the nodes run,
    so only the nodes under test close draws."""
    live: LiveServer = await start_server(settings)
    try:
        world = await live.seed()
        async with live.app[SESSION_FACTORY].begin() as session:
            users = [await accounts.create_guest(session, f"Viewer {i}") for i in range(guests)]
        viewers = [(user.id, live.app[TOKENS].issue(accounts.principal_of(user))) for user in users]
    finally:
        await live.runner.cleanup()
    return world, viewers


def node_env(settings, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "DRAW_MIN_WATCH_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def spawn(env: dict[str, str], data_dir) -> ServerProcess:
    return await asyncio.to_thread(spawn_server, env, data_dir=data_dir)


def ws_url(node: ServerProcess, room_id: int, token: str) -> str:
    return f"ws{node.url.removeprefix('http')}/ws/rooms/{room_id}?token={token}"


async def api(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_draw_closes_correctly_after_a_restart_in_the_middle(settings, tmp_path):
    world, viewers = await seeded(settings, 4)
    env = node_env(settings)
    node = await spawn(env, tmp_path / "node")
    clients: list[RoomClient] = []
    try:
        async with aiohttp.ClientSession() as http:
            status, started = await api(
                http,
                "POST",
                f"{node.url}/api/rooms/{world.room_id}/draws",
                world.tokens["anchor"],
                {
                    "prize_text": "Tea set",
                    "rule": "keyword",
                    "keyword": "tea",
                    "winners_count": 2,
                    "duration_seconds": 3600,
                },
            )
            assert status == 201, started
            for _, token in viewers[:3]:
                client = await RoomClient.connect(ws_url(node, world.room_id, token))
                clients.append(client)
                await client.ok("draw.enter", {})
            for client in clients:
                await client.close()
            clients.clear()

            node.stop(signal.SIGKILL)
            # The node stays down across the draw's close.
            conn = await asyncpg.connect(
                settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
            )
            try:
                await conn.execute(
                    "UPDATE draws SET closes_at = now() - interval '1 second' WHERE id = $1", started["id"]
                )
            finally:
                await conn.close()

            node = await spawn(env, tmp_path / "node")

            async def closed_record():
                _, record = await api(http, "GET", f"{node.url}/api/draws/{started['id']}")
                return record if record["state"] == "closed" else None

            record = await wait_for(closed_record, timeout=30, message="the draw to close after the restart")
            assert record["entrants"] == sorted(uid for uid, _ in viewers[:3])
            assert len(record["winners"]) == 2
            assert verify(record).ok, verify(record).mismatches
            assert record["seed_commitment"] == started["seed_commitment"]

            late = await RoomClient.connect(ws_url(node, world.room_id, viewers[3][1]))
            clients.append(late)
            reply = await late.send("draw.enter", {"draw_id": started["id"]})
            assert reply["error"]["code"] == "draw_closed"
    finally:
        for client in clients:
            await client.close()
        node.stop()


async def test_entry_storm_on_two_nodes_counts_each_account_once(settings, tmp_path, redis_url):  # noqa: F811
    """300 viewers on two nodes send 7 taps each at once (2,100 entry commands), 50 more enter
    by chat keyword: every account is in exactly once, whichever node it used."""
    tappers, chatters, taps = 300, 50, 7
    world, viewers = await seeded(settings, tappers + chatters)
    env = node_env(settings, REDIS_URL=redis_url)
    nodes = [await spawn(env, tmp_path / "a"), await spawn(env, tmp_path / "b")]
    clients: list[RoomClient] = []
    try:
        async with aiohttp.ClientSession() as http:
            status, started = await api(
                http,
                "POST",
                f"{nodes[0].url}/api/rooms/{world.room_id}/draws",
                world.tokens["anchor"],
                {
                    "prize_text": "Tea set",
                    "rule": "keyword",
                    "keyword": "tea",
                    "winners_count": 5,
                    "duration_seconds": 3600,
                },
            )
            assert status == 201, started
            gate = asyncio.Semaphore(50)

            async def connect(index: int, token: str) -> RoomClient:
                async with gate:
                    client = await RoomClient.connect(ws_url(nodes[index % 2], world.room_id, token))
                    await client.event("snapshot", timeout=60)
                    return client

            clients = list(await asyncio.gather(*(connect(i, t) for i, (_, t) in enumerate(viewers))))

            # 2,450 commands answered by two nodes sharing two cores with this client: generous
            async def storm(client: RoomClient) -> list[dict]:
                return list(
                    await asyncio.gather(*(client.send("draw.enter", {}, timeout=90) for _ in range(taps)))
                )

            tap_replies, chat_replies = await asyncio.gather(
                asyncio.gather(*(storm(c) for c in clients[:tappers])),
                asyncio.gather(
                    *(c.send("chat.send", {"text": "Tea for me!"}, timeout=90) for c in clients[tappers:])
                ),
            )
            for replies in tap_replies:
                outcomes = Counter(r["type"] if r["type"] == "ack" else r["error"]["code"] for r in replies)
                assert outcomes == {"ack": 1, "already_entered": taps - 1}, outcomes
            assert all(r["type"] == "ack" for r in chat_replies), chat_replies
            for client in clients[tappers:]:
                await client.wait(lambda m: m.get("type") == "draw.entered" and m.get("seq") is None, 30)

            status, closed = await api(
                http, "POST", f"{nodes[1].url}/api/draws/{started['id']}/close", world.tokens["operator"]
            )
            assert status == 200, closed
            assert closed["entrant_count"] == tappers + chatters
            _, record = await api(http, "GET", f"{nodes[0].url}/api/draws/{started['id']}")
            assert record["entrants"] == sorted(uid for uid, _ in viewers)
            assert verify(record).ok, verify(record).mismatches

            winners = {w["user_id"] for w in record["winners"]}
            assert len(winners) == 5
            for (user_id, _), client in zip(viewers, clients, strict=True):
                if user_id in winners:
                    await client.wait(lambda m: m.get("type") == "draw.won" and m.get("seq") is None, 30)
            for client in (clients[0], clients[1]):
                assert (await client.event("draw.closed", timeout=30))["data"]["seed"] == record["seed"]
            late = await clients[2].send("draw.enter", {})
            assert late["error"]["code"] == "draw_closed"
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        for node in nodes:
            node.stop()
