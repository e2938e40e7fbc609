"""Random sequences of room commands from several clients against a real server, with the
protocol's invariants checked after each sequence: every command is answered exactly once,
`seq` only grows on a connection, a resumed connection gets exactly the events it missed, and
the sale's stock never goes below zero and balances with the acknowledged reservations."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from commerce_client import dsn_of, ledger, new_key, start_sale
from helpers import LiveServer, World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from room_client import RoomClient

from livecommerce.appkeys import SETTINGS

ALLOCATED = 5
PER_USER_LIMIT = 3
CLIENTS = 3  # two guests and an operator; a silent observer watches too
_command_ids = itertools.count(1_000_000)

client_index = st.integers(0, CLIENTS - 1)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("tap"), client_index, st.integers(1, 3)),
        st.tuples(st.just("cancel"), client_index, st.just(0)),
        st.tuples(st.just("chat"), client_index, st.just(0)),
        st.tuples(st.just("like"), client_index, st.integers(1, 50)),
        st.tuples(st.just("junk"), client_index, st.integers(0, 2)),
        st.tuples(st.just("reconnect"), client_index, st.just(0)),
    ),
    min_size=1,
    max_size=16,
)


@dataclass
class Viewer:
    """One account's connections (the current one last) and the commands sent on each."""

    token: str
    connections: list[RoomClient] = field(default_factory=list)
    sent: list[list[int]] = field(default_factory=list)
    taps: dict[int, int] = field(default_factory=dict)
    """command id → quantity, for order.place commands"""
    cancels: set[int] = field(default_factory=set)
    seen: int = 0
    """the highest seq this account has received, on any of its connections"""

    @property
    def current(self) -> RoomClient:
        return self.connections[-1]

    async def fire(self, type_: str, data: dict[str, Any]) -> int:
        """Send a command without waiting for its answer."""
        command_id = next(_command_ids)
        await self.current.ws.send(orjson.dumps({"id": command_id, "type": type_, "data": data}).decode())
        self.sent[-1].append(command_id)
        return command_id

    async def answered(self, timeout: float = 30) -> None:
        """Wait until every command sent on the current connection has its answer."""
        client, pending = self.current, self.sent[-1]

        def all_answered(_: dict[str, Any]) -> bool:
            return all(answers(client, command_id) for command_id in pending)

        if pending:
            await client.wait(all_answered, timeout)

    def reserved_orders(self) -> dict[int, int]:
        """order id → quantity of every tap acknowledged as reserved, on any connection."""
        orders = {}
        for client in self.connections:
            for message in client.messages:
                if message.get("type") == "ack" and message.get("id") in self.taps:
                    order = message["data"]["order"]
                    orders[order["order_id"]] = order["quantity"]
        return orders

    def cancelled_orders(self) -> set[int]:
        return {
            message["data"]["order"]["order_id"]
            for client in self.connections
            for message in client.messages
            if message.get("type") == "ack" and message.get("id") in self.cancels
        }


def answers(client: RoomClient, command_id: int) -> list[dict[str, Any]]:
    return [m for m in client.messages if m.get("id") == command_id and m.get("type") in ("ack", "error")]


def sequenced(client: RoomClient) -> list[tuple[int, str]]:
    return [(m["seq"], m["type"]) for m in client.messages if m.get("seq") is not None]


async def connect(server: LiveServer, room_id: int, token: str, **params: Any) -> RoomClient:
    client = await RoomClient.connect(server.room_ws(room_id, token, **params))
    await client.wait(lambda m: m["type"] in ("snapshot", "resumed"))
    return client


async def reconnect_and_check_resume(
    server: LiveServer, world: World, viewer: Viewer, observer: RoomClient
) -> None:
    await viewer.answered()
    old = viewer.current
    since = viewer.seen = max(viewer.seen, old.last_seq)
    await old.close()
    fresh = await connect(server, world.room_id, viewer.token, since=since)
    viewer.connections.append(fresh)
    viewer.sent.append([])
    hello = await fresh.event("resumed")
    latest = hello["data"]["latest"]
    await observer.wait(lambda _: observer.last_seq >= latest)
    replayed = [(seq, type_) for seq, type_ in sequenced(fresh) if seq <= latest]
    missed = [
        (seq, type_) for seq, type_ in sequenced(observer) if since < seq <= latest and type_ != "snapshot"
    ]
    assert replayed == missed, f"resume after {since}: got {replayed}, the room had {missed}"
    assert hello["data"]["replayed"] == len(missed)


async def play(server: LiveServer, steps: list[tuple[str, int, int]]) -> None:
    world = await server.seed(stock=20)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=ALLOCATED,
            per_user_limit=PER_USER_LIMIT,
        )
    tokens = [(await server.guest(f"Viewer {i}"))[1] for i in range(CLIENTS - 1)] + [world.tokens["operator"]]
    viewers = [Viewer(token) for token in tokens]
    observer = await connect(server, world.room_id, (await server.guest("Observer"))[1])
    for viewer in viewers:
        viewer.connections.append(await connect(server, world.room_id, viewer.token))
        viewer.sent.append([])
    try:
        for action, who, amount in steps:
            viewer = viewers[who]
            if action == "tap":
                data = {"sale_id": sale["sale_id"], "quantity": amount, "idempotency_key": new_key()}
                viewer.taps[await viewer.fire("order.place", data)] = amount
            elif action == "cancel":
                await viewer.answered()
                order_id = max(viewer.reserved_orders(), default=2**62)
                viewer.cancels.add(await viewer.fire("order.cancel", {"order_id": order_id}))
            elif action == "chat":
                await viewer.fire("chat.send", {"text": f"hello from {who}"})
            elif action == "like":
                await viewer.fire("like", {"count": amount})
            elif action == "junk":
                junk = [("no.such.command", {}), ("order.place", {"quantity": "many"}), ("chat.send", {})]
                await viewer.fire(*junk[amount])
            else:
                await reconnect_and_check_resume(server, world, viewer, observer)
        for viewer in viewers:
            await viewer.answered()
        check_invariants(viewers, observer)
        await check_stock(server, sale["sale_id"], viewers)
    finally:
        for client in [observer, *(viewer.current for viewer in viewers)]:
            await client.close()


def check_invariants(viewers: list[Viewer], observer: RoomClient) -> None:
    for viewer in viewers:
        for client, sent in zip(viewer.connections, viewer.sent, strict=True):
            for command_id in sent:
                assert len(answers(client, command_id)) == 1, (
                    f"command {command_id}: {answers(client, command_id)}"
                )
    for client in [observer, *(c for viewer in viewers for c in viewer.connections)]:
        seqs = [seq for seq, _ in sequenced(client)]
        assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
        for message in client.messages:
            if message.get("type") == "stock":
                assert message["data"]["available"] >= 0, message


async def check_stock(server: LiveServer, sale_id: int, viewers: list[Viewer]) -> None:
    books = await ledger(dsn_of(server.app[SETTINGS].database_url), sale_id)
    assert books.available >= 0
    acknowledged = sum(
        quantity
        for viewer in viewers
        for order_id, quantity in viewer.reserved_orders().items()
        if order_id not in viewer.cancelled_orders()
    )
    assert books.taken == acknowledged, (books, acknowledged)
    assert books.available + books.taken == books.allocated, books
    assert books.per_user == books.ledger_per_user
    assert all(units <= PER_USER_LIMIT for units in books.per_user.values()), books.per_user


async def test_random_command_sequences_keep_the_room_protocol(server: LiveServer) -> None:
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=12,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(steps=actions)
    def sequences(steps: list[tuple[str, int, int]]) -> None:
        asyncio.run_coroutine_threadsafe(play(server, steps), loop).result(timeout=120)

    await asyncio.to_thread(sequences)
