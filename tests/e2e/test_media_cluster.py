"""One stream across nodes: `livecommerce serve` processes sharing PostgreSQL and a real Valkey,
with real aiortc publishers and viewers on loopback. A viewer on any node plays; an edge pulls the
stream from its origin once; the publisher moves between nodes; an origin dies; nodes fill up."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as redis
import testpattern
from helpers import ServerProcess, recvonly_offer, spawn_server, wait_for
from room_client import RoomClient
from valkey_fixture import redis_url, valkey  # noqa: F401

pytestmark = [pytest.mark.media, pytest.mark.multinode, pytest.mark.timeout(300)]

WIDTH, HEIGHT = 640, 360
MEDIA_TIMEOUT = 90


@dataclass
class Nodes:
    processes: dict[str, ServerProcess]

    def url(self, node: str) -> str:
        return self.processes[node].url

    def whip(self, node: str, room_id: int) -> str:
        return f"{self.url(node)}/api/rooms/{room_id}/whip"

    def whep(self, node: str, room_id: int) -> str:
        return f"{self.url(node)}/api/rooms/{room_id}/whep"

    async def status(self, http: aiohttp.ClientSession, node: str, room_id: int) -> dict:
        async with http.get(f"{self.url(node)}/api/rooms/{room_id}/stream") as response:
            assert response.status == 200
            return await response.json()


@pytest.fixture
def start_nodes(server, settings, redis_url, tmp_path) -> AsyncIterator[Callable]:  # noqa: F811
    """Start named nodes (each its own process and ports) with extra settings."""
    started: list[ServerProcess] = []

    async def start(names: list[str], **extra: str) -> Nodes:
        env = {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": settings.secret_key,
            "RTC_HOST_ADDRESSES": "127.0.0.1",
            "PRESENCE_INTERVAL_SECONDS": "0.5",
            "LOG_LEVEL": "INFO",
            **extra,
        }
        processes = {}
        for name in names:
            process = await asyncio.to_thread(
                spawn_server, {**env, "NODE_ID": f"node-{name}"}, data_dir=tmp_path / name
            )
            started.append(process)
            processes[name] = process
        return Nodes(processes)

    yield start
    for process in started:
        process.stop(signal.SIGKILL if process.proc.poll() is None else signal.SIGTERM, timeout=30)


def pattern() -> testpattern.PatternVideoTrack:
    return testpattern.PatternVideoTrack(width=WIDTH, height=HEIGHT, fps=15, bitrate=300_000)


async def publish(http, nodes: Nodes, node: str, world) -> testpattern.Publisher:
    return await testpattern.publish(
        http,
        nodes.whip(node, world.room_id),
        world.stream_key,
        video=pattern(),
        audio=testpattern.ToneAudioTrack(),
    )


async def playing(viewer: testpattern.Viewer, more_than: int = 10, message: str = "the viewer plays") -> None:
    await wait_for(
        lambda: viewer.video_frames > more_than, timeout=MEDIA_TIMEOUT, interval=0.1, message=message
    )


async def test_a_viewer_on_another_node_plays_through_one_relay(server, start_nodes):
    world = await server.seed()
    nodes = await start_nodes(["a", "b"])
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, nodes, "a", world)
        status = await wait_for(
            lambda: _status_with(nodes, http, "b", world.room_id, lambda s: s["state"] == "live"),
            timeout=MEDIA_TIMEOUT,
            message="node b sees the room live",
        )
        assert status["origin"] == "node-a" and status["node"] == "node-b"

        viewers = [await testpattern.play(http, nodes.whep("b", world.room_id)) for _ in range(3)]
        for viewer in viewers:
            await playing(viewer, 20, "every viewer on node b decodes video")
        assert all(viewer.sizes == {(WIDTH, HEIGHT)} for viewer in viewers)
        assert all(viewer.first_frame_keyframe for viewer in viewers)
        assert all("/whep/node-b." in viewer.location for viewer in viewers)

        at_a = await nodes.status(http, "a", world.room_id)
        at_b = await nodes.status(http, "b", world.room_id)
        # the origin serves one relay, whatever the edge's audience
        assert (at_a["viewers"], at_a["relays"]) == (0, 1)
        assert (at_b["viewers"], at_b["relayed_from"], at_b["origin"]) == (3, "node-a", "node-a")
        assert at_a["stream_session_id"] == at_b["stream_session_id"] is not None

        # a session resource is answered by whichever node receives the request
        async with http.delete(viewers[0].location.replace(nodes.url("b"), nodes.url("a"))) as response:
            assert response.status == 200
        await wait_for(
            lambda: _status_with(nodes, http, "b", world.room_id, lambda s: s["viewers"] == 2),
            message="the viewer left node b",
        )
        async with http.delete(viewers[0].location) as response:
            assert response.status == 404

        # the publisher leaving ends the edge's viewers too
        async with http.delete(publisher.location) as response:
            assert response.status == 200
        for viewer in viewers[1:]:
            await asyncio.wait_for(viewer.ended.wait(), MEDIA_TIMEOUT)
        for viewer in viewers:
            await viewer.close()
        await publisher.pc.close()


async def _status_with(
    nodes: Nodes, http, node: str, room_id: int, check: Callable[[dict], bool]
) -> dict | None:
    status = await nodes.status(http, node, room_id)
    return status if check(status) else None


async def test_the_publisher_moves_to_another_node_and_every_viewer_keeps_playing(server, start_nodes):
    world = await server.seed()
    nodes = await start_nodes(["a", "b", "c"], PUBLISHER_GRACE_SECONDS="30")
    async with aiohttp.ClientSession() as http:
        first = await publish(http, nodes, "a", world)
        viewers = {
            name: await testpattern.play(http, nodes.whep(name, world.room_id)) for name in ("a", "b", "c")
        }
        for viewer in viewers.values():
            await playing(viewer)
        session = (await nodes.status(http, "a", world.room_id))["stream_session_id"]

        await first.pc.close()  # the phone's network drops: no DELETE, the grace period starts
        await wait_for(
            lambda: _status_with(nodes, http, "a", world.room_id, lambda s: s["state"] == "grace"),
            timeout=MEDIA_TIMEOUT,
            message="node a keeps the stream in its grace period",
        )
        second = await publish(http, nodes, "b", world)
        before = {name: viewer.video_frames for name, viewer in viewers.items()}
        for name, viewer in viewers.items():
            await playing(viewer, before[name] + 30, f"the viewer on node {name} plays the new publisher")
        for name in ("a", "b", "c"):
            status = await nodes.status(http, name, world.room_id)
            assert status["origin"] == "node-b", status
            assert status["stream_session_id"] == session
        # the same peer connections all along: nobody renegotiated
        assert all(viewer.pc.connectionState == "connected" for viewer in viewers.values())
        assert all(viewer.decode_errors == 0 for viewer in viewers.values())
        for viewer in viewers.values():
            await viewer.close()
        await second.pc.close()


async def test_viewers_are_told_when_their_origin_node_dies(server, start_nodes, redis_url):  # noqa: F811
    world = await server.seed()
    nodes = await start_nodes(["a", "b"], PUBLISHER_GRACE_SECONDS="5")
    _, token = await server.guest("Ann")
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, nodes, "a", world)
        viewer = await testpattern.play(http, nodes.whep("b", world.room_id))
        await playing(viewer)
        room = await RoomClient.connect(
            "ws" + nodes.url("b").removeprefix("http") + f"/ws/rooms/{world.room_id}?token={token}"
        )
        await room.wait(lambda m: m["type"] == "snapshot", timeout=30)

        nodes.processes["a"].stop(signal.SIGKILL)
        ended = await room.wait(lambda m: m["type"] == "stream.ended", timeout=30)
        assert ended["data"]["reason"] == "origin_lost"
        await asyncio.wait_for(viewer.ended.wait(), MEDIA_TIMEOUT)

        client = redis.from_url(redis_url)
        try:
            await wait_for(
                lambda: _no_keys(client, "lc:media:node:node-a", f"lc:media:stream:{world.room_id}"),
                timeout=10,
                message="the dead node's registry entries expire",
            )
        finally:
            await client.aclose()
        status = await nodes.status(http, "b", world.room_id)
        assert status["state"] == "offline"
        await room.close()
        await viewer.close()
        await publisher.pc.close()


async def _no_keys(client: redis.Redis, *keys: str) -> bool:
    return await client.exists(*keys) == 0


async def test_a_full_node_redirects_and_a_full_cluster_refuses(server, start_nodes):
    world = await server.seed()
    nodes = await start_nodes(["a", "b"], MAX_VIEWERS_PER_NODE="1")
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, nodes, "a", world)
        first = await testpattern.play(http, nodes.whep("a", world.room_id))
        await playing(first)

        # node a is full: its WHEP endpoint sends the next viewer to node b (307), which relays
        offer = await recvonly_offer()
        async with http.post(
            nodes.whep("a", world.room_id),
            data=offer,
            headers={"Content-Type": "application/sdp"},
            allow_redirects=False,
        ) as response:
            assert response.status == 307
            assert response.headers["Location"] == nodes.whep("b", world.room_id)
        second = await testpattern.play(http, nodes.whep("a", world.room_id))  # follows the redirect
        await playing(second)
        assert "/whep/node-b." in second.location
        # the relay that feeds node b is not counted against node a's single place
        assert (await nodes.status(http, "a", world.room_id))["relays"] == 1

        async with http.post(
            nodes.whep("b", world.room_id), data=offer, headers={"Content-Type": "application/sdp"}
        ) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            body = await response.json()
            assert body["error"]["code"] == "over_capacity"
            assert "every node" in body["error"]["message"]
        for viewer in (first, second):
            await viewer.close()
        await publisher.pc.close()


async def test_workers_share_one_port_and_every_viewer_plays(tmp_path):
    """`serve --workers 3 --demo`: embedded PostgreSQL and Valkey, three nodes on one port."""
    import json

    import psutil

    env = {"RTC_HOST_ADDRESSES": "127.0.0.1", "LOG_LEVEL": "INFO"}
    server = await asyncio.to_thread(
        spawn_server, env, "--workers", "3", "--demo", data_dir=tmp_path, timeout=180
    )
    try:
        await wait_for(lambda: "(3 workers:" in server.log(), timeout=180, message="all three workers listen")
        demo = json.loads((tmp_path / "demo.json").read_text())
        room_id, key = demo["room_id"], demo["stream_key"]
        whip = f"{server.url}/api/rooms/{room_id}/whip"
        whep = f"{server.url}/api/rooms/{room_id}/whep"
        async with aiohttp.ClientSession() as http:
            publisher = await testpattern.publish(
                http, whip, key, video=pattern(), audio=testpattern.ToneAudioTrack()
            )
            viewers = []
            for _ in range(12):
                # a connection of its own each time: the kernel spreads connections over the workers
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as own:
                    viewers.append(await testpattern.play(own, whep, decode=False))
            for viewer in viewers:
                await playing(viewer, 20, "every viewer plays, whichever worker it reached")
            nodes = {viewer.location.rsplit("/", 1)[1].rpartition(".")[0] for viewer in viewers}
            assert len(nodes) >= 2, nodes

            # a worker that dies is restarted, and says so in the log
            workers = psutil.Process(server.proc.pid).children()
            assert len(workers) >= 3
            victim = next(w for w in workers if "spawn_main" in " ".join(w.cmdline()))
            victim.kill()
            await wait_for(
                lambda: "restarting it" in server.log(), timeout=30, message="the supervisor notices"
            )
            await wait_for(
                lambda: _worker_pids(server.proc.pid) - {w.pid for w in workers},
                timeout=180,
                message="a new worker runs",
            )
            for viewer in viewers:
                await viewer.close()
            await publisher.pc.close()
    finally:
        code = await asyncio.to_thread(server.stop, signal.SIGTERM, 60)
    assert code == 0, server.log()[-3000:]
    assert not _worker_pids(server.proc.pid)


def _worker_pids(parent: int) -> set[int]:
    import psutil

    try:
        children = psutil.Process(parent).children()
    except psutil.NoSuchProcess:
        return set()
    return {child.pid for child in children if "spawn_main" in " ".join(child.cmdline())}


async def test_edges_pull_from_edges_when_the_origin_feeds_as_many_as_it_may(server, start_nodes):
    world = await server.seed()
    nodes = await start_nodes(["a", "b", "c"], RELAY_FANOUT="1", RELAY_IDLE_SECONDS="2")
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, nodes, "a", world)
        on_b = await testpattern.play(http, nodes.whep("b", world.room_id))
        await playing(on_b)
        on_c = await testpattern.play(http, nodes.whep("c", world.room_id))
        await playing(on_c, 20, "the viewer two hops from the publisher plays")
        assert on_c.first_frame_keyframe and on_c.sizes == {(WIDTH, HEIGHT)}
        at_a, at_b, at_c = [await nodes.status(http, name, world.room_id) for name in ("a", "b", "c")]
        assert (at_a["relays"], at_b["relayed_from"], at_b["relays"]) == (1, "node-a", 1)
        assert (at_c["relayed_from"], at_c["origin"], at_c["viewers"]) == ("node-b", "node-a", 1)

        # the last viewer of node c leaves: a short while later c stops pulling from b
        await on_c.close()
        await wait_for(
            lambda: _status_with(nodes, http, "b", world.room_id, lambda s: s["relays"] == 0),
            timeout=60,
            interval=0.5,
            message="node c's relay ends after its last viewer",
        )
        assert (await nodes.status(http, "c", world.room_id))["relayed_from"] is None
        await on_b.close()
        await publisher.pc.close()


async def test_hls_is_made_where_the_broadcast_started_and_other_nodes_send_players_there(
    server, start_nodes
):
    world = await server.seed()
    nodes = await start_nodes(["a", "b"])
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            nodes.whip("a", world.room_id),
            world.stream_key,
            video=testpattern.PatternVideoTrack(width=480, height=272, fps=15, bitrate=300_000, codec="h264"),
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )
        status = await wait_for(
            lambda: _status_with(nodes, http, "b", world.room_id, lambda s: s.get("hls_url") is not None),
            timeout=MEDIA_TIMEOUT,
            message="node b learns that the live has HLS",
        )
        playlist = status["hls_url"]
        async with http.get(nodes.url("b") + playlist, allow_redirects=False) as response:
            assert response.status == 307
            assert response.headers["Location"] == nodes.url("a") + playlist

        async def listed() -> str | None:
            async with http.get(nodes.url("b") + playlist) as response:  # follows the redirect
                text = await response.text()
                return text if response.status == 200 and "#EXT-X-PART:" in text else None

        text = await wait_for(
            listed, timeout=MEDIA_TIMEOUT, interval=0.5, message="the playlist through node b"
        )
        assert text.startswith("#EXTM3U")
        await publisher.pc.close()
