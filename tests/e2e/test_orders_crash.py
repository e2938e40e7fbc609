"""Crash safety: SIGKILL a real `livecommerce serve` during a storm; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import asyncpg
from commerce_client import call, dsn_of, guests, ledger, new_key, start_sale
from helpers import spawn_server


async def test_sigkill_during_a_storm_loses_no_acknowledged_order(server, settings, database_url, tmp_path):
    world = await server.seed(stock=400)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": settings.secret_key, "LOG_LEVEL": "WARNING"}
    node = await asyncio.to_thread(spawn_server, env, data_dir=tmp_path / "node")
    acknowledged: dict[str, tuple[int, dict]] = {}
    sent: list[tuple[str, int, str]] = []
    enough, killed = asyncio.Event(), asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=300,
            per_user_limit=3,
        )
        buyers = await guests(http, server.url, 200)

        async def buyer(user_id: int, token: str) -> None:
            for _ in range(5):
                if killed.is_set():
                    return
                key = new_key()
                sent.append((key, user_id, token))
                try:
                    status, answer = await call(
                        http,
                        "POST",
                        f"{node.url}/api/orders",
                        token,
                        {"sale_id": sale["sale_id"], "idempotency_key": key},
                    )
                except (aiohttp.ClientError, TimeoutError):
                    return  # the node died under us: this tap was never acknowledged
                if status in (200, 409):
                    acknowledged[key] = (user_id, answer)
                    if len(acknowledged) >= 60:
                        enough.set()

        async def killer() -> None:
            await enough.wait()
            node.proc.send_signal(signal.SIGKILL)
            killed.set()

        storm = asyncio.gather(*(buyer(user_id, token) for user_id, token in buyers))
        kill = asyncio.ensure_future(killer())
        await asyncio.wait([storm, kill], return_when=asyncio.FIRST_COMPLETED)
        assert kill.done(), (
            f"the storm ended with only {len(acknowledged)} answers and the node was never killed"
        )
        await storm
        assert await asyncio.to_thread(node.proc.wait, 15) == -signal.SIGKILL
        assert len(sent) > len(acknowledged)  # taps were in flight when it died

        restarted = await asyncio.to_thread(spawn_server, env, data_dir=tmp_path / "node")
        try:
            conn = await asyncpg.connect(dsn_of(database_url))
            try:
                rows = await conn.fetch(
                    "SELECT id, user_id, idempotency_key FROM orders WHERE sale_id = $1", sale["sale_id"]
                )
            finally:
                await conn.close()
            stored = {row["idempotency_key"]: (row["user_id"], row["id"]) for row in rows}
            for key, (user_id, answer) in acknowledged.items():
                if "order" in answer:
                    assert stored[key] == (user_id, answer["order"]["order_id"])
                else:
                    assert key not in stored
            # every key, answered or not, gets one final answer after the restart and reserves at most once
            tokens = {key: token for key, _, token in sent}
            for key, (_, answer) in list(acknowledged.items())[:50]:
                _, again = await call(
                    http,
                    "POST",
                    f"{restarted.url}/api/orders",
                    tokens[key],
                    {"sale_id": sale["sale_id"], "idempotency_key": key},
                )
                assert again == answer
        finally:
            restarted.stop()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.taken + book.available == book.allocated == 300
    assert book.taken == len(stored)
    assert all(units <= 3 for units in book.per_user.values())
    assert book.ledger_per_user == book.per_user
    assert book.sku_reserved == 300 and book.on_hand == 400
