"""Chromium watching a room on a node that does not hold its publisher: the watch page of node b
plays the stream that node a receives, through node b's relay."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
import redis
import testpattern
from browser_fixtures import People, browser, server, video_plays
from helpers import spawn_server
from playwright.async_api import Browser, expect
from valkey_fixture import valkey  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.multinode,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),
]
__all__ = ["browser", "server"]


async def test_the_watch_page_on_another_node_plays_the_stream(
    browser: Browser,
    server,
    settings,
    valkey,  # noqa: F811
    tmp_path,
):
    redis.Redis.from_url(valkey.connection_url).flushall()
    world = await server.seed()
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": valkey.connection_url,
        "SECRET_KEY": settings.secret_key,
        "RTC_HOST_ADDRESSES": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    nodes = {}
    try:
        for name in ("a", "b"):
            nodes[name] = await asyncio.to_thread(
                spawn_server, {**env, "NODE_ID": f"node-{name}"}, data_dir=tmp_path / name
            )
        async with aiohttp.ClientSession() as http:
            publisher = await testpattern.publish(
                http,
                f"{nodes['a'].url}/api/rooms/{world.room_id}/whip",
                world.stream_key,
                video=testpattern.PatternVideoTrack(width=640, height=360, fps=15, bitrate=300_000),
                audio=testpattern.ToneAudioTrack(),
            )
            people = People(browser, nodes["b"].url)
            try:
                watch = await people.open(f"/watch/{world.room_id}")
                await video_plays(watch)
                size = await watch.evaluate(
                    "() => [document.querySelector('#video').videoWidth, document.querySelector('#video').videoHeight]"
                )
                assert size == [640, 360]
                await expect(watch.locator("#live-badge")).to_be_visible()
                async with http.get(f"{nodes['a'].url}/api/rooms/{world.room_id}/stream") as response:
                    at_a = await response.json()
                async with http.get(f"{nodes['b'].url}/api/rooms/{world.room_id}/stream") as response:
                    at_b = await response.json()
                assert (at_a["relays"], at_a["viewers"]) == (1, 0)
                assert (at_b["viewers"], at_b["relayed_from"]) == (1, "node-a")
            finally:
                await people.close()
            assert people.errors == []
            await publisher.pc.close()
    finally:
        for process in nodes.values():
            await asyncio.to_thread(process.stop, signal.SIGTERM, 30)
