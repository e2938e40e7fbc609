"""PostgreSQL goes away under a storm of Buy taps on a real `livecommerce serve`: its backends
are frozen (SIGSTOP) or cut (pg_terminate_backend). Every tap still gets one answer (taps the
outage broke: `503 unavailable`), no acknowledged reservation is lost, and the sale's units
balance afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import pytest
from commerce_client import call, dsn_of, guests, ledger, new_key, start_sale
from helpers import spawn_server
from room_client import RoomClient

OUTAGE_SECONDS = 3.0
OTHER_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def freeze_backends(admin: asyncpg.Connection) -> None:
    """Stop every server process of the database for a while, then let them carry on."""
    pids = [row["pid"] for row in await admin.fetch(OTHER_BACKENDS)]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def cut_connections(admin: asyncpg.Connection) -> None:
    """Terminate every connection to the database, again and again, for a while."""
    deadline = asyncio.get_running_loop().time() + OUTAGE_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM ({OTHER_BACKENDS}) AS others")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("outage", [freeze_backends, cut_connections], ids=["frozen", "cut"])
async def test_taps_during_a_database_outage_are_answered_and_balance(
    outage: Callable[[asyncpg.Connection], Awaitable[None]], server, settings, database_url, tmp_path
):
    world = await server.seed(stock=200)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": settings.secret_key, "LOG_LEVEL": "ERROR"}
    node = await asyncio.to_thread(spawn_server, env, data_dir=tmp_path / "node")
    answers: dict[str, tuple[int, int, dict]] = {}  # key → (user id, status, body)
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100), timeout=timeout) as http:
            sale = await start_sale(
                http,
                server.url,
                world.tokens["operator"],
                room_id=world.room_id,
                sku_id=world.sku_id,
                allocated=150,
                per_user_limit=3,
            )
            buyers = await guests(http, server.url, 60)
            started = asyncio.Event()

            async def buyer(user_id: int, token: str) -> None:
                for _ in range(4):
                    key = new_key()
                    status, body = await call(
                        http,
                        "POST",
                        f"{node.url}/api/orders",
                        token,
                        {"sale_id": sale["sale_id"], "idempotency_key": key},
                    )
                    answers[key] = (user_id, status, body)
                    if len(answers) >= 30:
                        started.set()

            async def fault() -> None:
                await started.wait()
                admin = await asyncpg.connect(dsn_of(database_url))
                try:
                    await outage(admin)
                finally:
                    await admin.close()

            await asyncio.gather(fault(), *(buyer(user_id, token) for user_id, token in buyers))

            # every tap got exactly one answer: an order, or an error in the error shape
            assert len(answers) == 4 * len(buyers)
            for user_id, status, body in answers.values():
                if status == 200:
                    assert body["outcome"] == "reserved" and body["order"]["user_id"] == user_id, body
                elif status >= 500:  # the outage itself, told as such rather than as a bug
                    assert (status, body["error"]["code"]) == (503, "unavailable"), body
                else:
                    assert set(body["error"]) >= {"code", "message"}, (status, body)
            failed = sum(status >= 500 for _, status, _ in answers.values())

            # once the database is back, the same keys give final answers and reserve at most once
            for key, (user_id, status, body) in answers.items():
                token = next(t for u, t in buyers if u == user_id)
                again_status, again = await call(
                    http,
                    "POST",
                    f"{node.url}/api/orders",
                    token,
                    {"sale_id": sale["sale_id"], "idempotency_key": key},
                )
                if status == 200 or 400 <= status < 500:
                    assert (again_status, again) == (status, body), key
                else:
                    assert again_status < 500, again
                answers[key] = (user_id, again_status, again)
    finally:
        node.stop()

    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        stored = {
            row["idempotency_key"]: row["id"]
            for row in await conn.fetch(
                "SELECT id, idempotency_key FROM orders WHERE sale_id = $1 AND status = 'reserved'",
                sale["sale_id"],
            )
        }
    finally:
        await conn.close()
    reserved = {key: body["order"]["order_id"] for key, (_, status, body) in answers.items() if status == 200}
    assert stored == reserved, f"{failed} taps failed during the outage"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.available >= 0
    assert book.taken + book.available == book.allocated == 150
    assert book.taken == len(reserved)
    assert book.ledger_per_user == book.per_user
    assert all(units <= 3 for units in book.per_user.values())
    assert book.sku_reserved == 150 and book.on_hand == 200


async def test_room_taps_while_connections_are_cut_are_each_answered_once(
    server, settings, database_url, tmp_path
):
    world = await server.seed(stock=100)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": settings.secret_key, "LOG_LEVEL": "WARNING"}
    node = await asyncio.to_thread(spawn_server, env, data_dir=tmp_path / "node")
    ws_url = "ws" + node.url.removeprefix("http") + f"/ws/rooms/{world.room_id}?token="
    clients: list[RoomClient] = []
    try:
        async with aiohttp.ClientSession() as http:
            sale = await start_sale(
                http,
                server.url,
                world.tokens["operator"],
                room_id=world.room_id,
                sku_id=world.sku_id,
                allocated=60,
            )
            buyers = await guests(http, server.url, 12)
        for _, token in buyers:
            clients.append(await RoomClient.connect(ws_url + token))
        for client in clients:
            await client.event("snapshot")

        async def taps(client: RoomClient) -> list[dict]:
            answers = []
            for _ in range(5):
                data = {"sale_id": sale["sale_id"], "idempotency_key": new_key()}
                answers.append(await client.send("order.place", data, timeout=60))
                await asyncio.sleep(0.3)
            return answers

        admin = await asyncpg.connect(dsn_of(database_url))
        try:
            storm = asyncio.gather(*(taps(client) for client in clients))
            await cut_connections(admin)
            per_client = await storm
        finally:
            await admin.close()
        for client, answers in zip(clients, per_client, strict=True):
            for answer in answers:  # exactly one answer per command, none of them a bug
                assert len([m for m in client.messages if m.get("id") == answer["id"]]) == 1
                if answer["type"] == "error":
                    assert answer["error"]["code"] in ("unavailable", "sold_out", "limit_exceeded"), answer
            assert client.close_code is None
        reserved = {
            answer["data"]["order"]["order_id"]
            for answers in per_client
            for answer in answers
            if answer["type"] == "ack"
        }
        assert any(answer["type"] == "error" for answers in per_client for answer in answers), (
            "the cut hit no tap"
        )
    finally:
        for client in clients:
            await client.close()
        node.stop()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.taken == len(reserved)
    assert book.taken + book.available == book.allocated == 60
