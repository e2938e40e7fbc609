"""Stock versions across real `livecommerce serve` processes sharing PostgreSQL and Valkey: a
storm of taps and restocks on both nodes, watched by a viewer on each node."""

from __future__ import annotations

import asyncio
import random
from bisect import bisect_left

import aiohttp
import asyncpg
import pytest
from commerce_client import call, guests, new_key, start_sale
from room_client import RoomClient
from test_draws_cluster import node_env, seeded, spawn, ws_url
from valkey_fixture import redis_url, valkey  # noqa: F401

from livecommerce.commerce.events import STOCK_INTERVAL_S, HighestVersion

pytestmark = pytest.mark.multinode

NODES = 2
WAVE = 8


def fewest_senders(versions: list[int]) -> int:
    """The fewest senders, each sending versions that never go down, whose events interleaved
    give `versions`: by Dilworth's theorem, the longest strictly decreasing subsequence."""
    tails: list[int] = []
    for version in versions:
        at = bisect_left(tails, -version)
        tails[at : at + 1] = [-version]
    return len(tails)


def test_fewest_senders_counts_the_interleaved_streams():
    assert fewest_senders([1, 2, 2, 5, 9]) == 1
    assert fewest_senders([1, 4, 2, 5, 3, 6]) == 2
    assert fewest_senders([5, 4, 6, 3]) == 3


def shown_available(messages: list[dict]) -> int | None:
    """What a viewer's page shows after these messages, keeping the highest version per sale."""
    seen = HighestVersion()
    shown = None
    for message in messages:
        if message.get("type") == "stock" or message.get("type", "").startswith("sale."):
            data = message["data"]
            if seen.advance(data["sale_id"], data["version"]):
                shown = data["available"]
    return shown


@pytest.mark.parametrize("batching", ["true", "false"], ids=["batched", "row_lock"])
async def test_viewers_on_two_nodes_end_on_the_true_stock_and_version(
    settings,
    tmp_path,
    redis_url,  # noqa: F811
    batching,
):
    world, _ = await seeded(settings, 0)
    env = node_env(settings, REDIS_URL=redis_url, ORDER_BATCHING=batching)
    nodes = await asyncio.gather(*(spawn(env, tmp_path / f"node-{i}") for i in range(NODES)))
    viewers: list[RoomClient] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
            sale = await start_sale(
                http,
                nodes[0].url,
                world.tokens["operator"],
                room_id=world.room_id,
                sku_id=world.sku_id,
                allocated=60,
                per_user_limit=3,
            )
            buyers = await guests(http, nodes[0].url, 80)
            for node, (_, token) in zip(nodes, buyers, strict=False):
                viewer = await RoomClient.connect(ws_url(node, world.room_id, token))
                viewers.append(viewer)
                snapshot = await viewer.event("snapshot")
                assert [s["version"] for s in snapshot["data"]["sales"]] == [sale["version"]]

            async def tap(node_url: str, token: str) -> None:
                status, answer = await call(
                    http,
                    "POST",
                    f"{node_url}/api/orders",
                    token,
                    {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": new_key()},
                )
                assert status in (200, 409), answer

            async def restock(node_url: str) -> None:
                status, answer = await call(
                    http,
                    "POST",
                    f"{node_url}/api/sales/{sale['sale_id']}/restock",
                    world.tokens["operator"],
                    {"units": 5, "receive": True},
                )
                assert status == 200, answer

            work = [tap(nodes[i % NODES].url, token) for i in range(3) for _, token in buyers]
            work += [restock(nodes[i % NODES].url) for i in range(24)]
            random.shuffle(work)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for at in range(0, len(work), WAVE):  # waves, so the storm spans many stock intervals
                await asyncio.gather(*work[at : at + WAVE])
            elapsed = loop.time() - started

        conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            final = await conn.fetchrow(
                "SELECT available, stock_version FROM flash_sales WHERE id = $1", sale["sale_id"]
            )
        finally:
            await conn.close()

        for viewer in viewers:
            await viewer.wait(
                lambda m: m.get("type") == "stock" and m["data"]["version"] == final["stock_version"]
            )
            stock = [m["data"] for m in viewer.events("stock")]
            newest = max(stock, key=lambda data: data["version"])
            assert (newest["available"], newest["version"]) == (final["available"], final["stock_version"])
            assert shown_available(viewer.messages) == final["available"]
            # each node's own events never go backwards: interleaved, they form at most one
            # ordered stream per node
            assert fewest_senders([data["version"] for data in stock]) <= NODES
            assert len(stock) <= NODES * (elapsed / STOCK_INTERVAL_S + 2)
    finally:
        for viewer in viewers:
            await viewer.close()
        for node in nodes:
            node.stop()
