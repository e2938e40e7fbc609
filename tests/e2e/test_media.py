"""The media plane with real aiortc peers on loopback: WHIP in, WHEP out, forwarding without
re-encoding, keyframes for late viewers, the end of a stream, and resuming within the grace period."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import orjson
import pytest
import testpattern
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from helpers import wait_for
from sqlalchemy import select

from livecommerce.appkeys import HUB, MEDIA, SESSION_FACTORY
from livecommerce.db.models import Room, RoomStatus, StreamSession

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

WIDTH, HEIGHT = 704, 396
MEDIA_TIMEOUT = 60


def urls(server, room_id: int) -> tuple[str, str]:
    return f"{server.url}/api/rooms/{room_id}/whip", f"{server.url}/api/rooms/{room_id}/whep"


async def start_publisher(http, server, world, **kwargs):
    whip, _ = urls(server, world.room_id)
    return await testpattern.publish(
        http,
        whip,
        world.stream_key,
        video=testpattern.PatternVideoTrack(width=WIDTH, height=HEIGHT, fps=15, bitrate=400_000),
        audio=testpattern.ToneAudioTrack(),
        **kwargs,
    )


async def room_events(server, room_id: int) -> list[tuple[str, dict]]:
    view = await server.app[HUB].history_after(room_id, 0)
    events = [orjson.loads(raw) for _, raw in view.events]
    return [(event["type"], event.get("data", {})) for event in events]


async def test_viewers_receive_the_published_video_and_audio_without_reencoding(server, monkeypatch):
    encodes = []
    for encoder in (Vp8Encoder, OpusEncoder):
        original = encoder.encode

        def counting(self, frame, force_keyframe=False, _original=original):
            encodes.append(type(self).__name__)
            return _original(self, frame, force_keyframe)

        monkeypatch.setattr(encoder, "encode", counting)

    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await start_publisher(http, server, world)
        viewers = [await testpattern.play(http, whep) for _ in range(3)]
        for viewer in viewers:
            await wait_for(
                lambda v=viewer: v.video_frames >= 10 and v.audio_frames >= 25,
                timeout=MEDIA_TIMEOUT,
                message="every viewer decodes video and audio",
            )
        for viewer in viewers:
            assert viewer.sizes == {(WIDTH, HEIGHT)}
            assert viewer.first_frame_keyframe is True
        # Neither the publisher (pre-encoded packets) nor the server's senders ran an encoder.
        assert encodes == []
        # Nobody started aiortc's decoder threads (the server taps encoded frames, so do viewers).
        assert [t.name for t in threading.enumerate() if t.name.endswith("-decoder")] == []
        assert all(viewer.decode_errors == 0 for viewer in viewers)
        stream = server.app[MEDIA].streams[world.room_id]
        assert stream.codec_names == {"video": "VP8", "audio": "opus"}
        for viewer in viewers:
            await viewer.close()
        await publisher.pc.close()


async def test_a_late_viewer_starts_on_a_keyframe_asked_of_the_publisher(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await start_publisher(http, server, world)
        first = await testpattern.play(http, whep)
        await wait_for(
            lambda: first.video_frames >= 30, timeout=MEDIA_TIMEOUT, message="the first viewer plays"
        )
        keyframes_before = publisher.video.keyframes
        late = await testpattern.play(http, whep)
        await wait_for(lambda: late.video_frames >= 5, timeout=MEDIA_TIMEOUT, message="the late viewer plays")
        assert late.first_frame_keyframe is True
        assert publisher.video.keyframes > keyframes_before
        async with http.get(f"{server.url}/api/rooms/{world.room_id}/stream") as response:
            status = await response.json()
        assert status["state"] == "live" and status["viewers"] == 2
        assert status["keyframe_requests"] >= 1
        assert late.sizes == {(WIDTH, HEIGHT)}
        for viewer in (first, late):
            await viewer.close()
        await publisher.pc.close()


async def test_publisher_leaving_ends_viewers_and_the_stream_session(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await start_publisher(http, server, world)
        viewer = await testpattern.play(http, whep)
        await wait_for(lambda: viewer.video_frames >= 5, timeout=MEDIA_TIMEOUT, message="the viewer plays")
        async with server.app[SESSION_FACTORY]() as session:
            assert (await session.get(Room, world.room_id)).status is RoomStatus.LIVE

        async with http.delete(publisher.location) as response:
            assert response.status == 200
        await publisher.pc.close()
        await asyncio.wait_for(viewer.ended.wait(), MEDIA_TIMEOUT)

        async with server.app[SESSION_FACTORY]() as session:
            row = (
                await session.scalars(select(StreamSession).where(StreamSession.room_id == world.room_id))
            ).one()
            room = await session.get(Room, world.room_id)
        assert row.ended_at is not None and row.end_reason == "publisher_left"
        assert (row.video_codec, row.audio_codec) == ("VP8", "opus")
        assert room.status is RoomStatus.OFFLINE
        assert await room_events(server, world.room_id) == [
            ("stream.live", {"stream_session_id": row.id, "video_codec": "VP8", "audio_codec": "opus"}),
            ("stream.ended", {"stream_session_id": row.id, "reason": "publisher_left"}),
        ]
        assert world.room_id not in server.app[MEDIA].streams
        await viewer.close()


@pytest.fixture
def settings(settings):
    settings.publisher_grace_seconds = 30
    return settings


async def test_a_publisher_returning_within_the_grace_period_resumes_for_viewers(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        first = await start_publisher(http, server, world)
        viewer = await testpattern.play(http, whep)
        await wait_for(lambda: viewer.video_frames >= 5, timeout=MEDIA_TIMEOUT, message="the viewer plays")
        stream = server.app[MEDIA].streams[world.room_id]

        await first.pc.close()  # the uplink drops: no DELETE
        await wait_for(lambda: stream.state == "grace", timeout=MEDIA_TIMEOUT, message="the grace period")
        frames_before = viewer.video_frames

        second = await start_publisher(http, server, world)
        await wait_for(
            lambda: viewer.video_frames >= frames_before + 10, timeout=MEDIA_TIMEOUT, message="frames resume"
        )
        assert server.app[MEDIA].streams[world.room_id] is stream
        assert stream.state == "live" and stream.resumes == 1
        assert not viewer.ended.is_set()
        assert [event for event, _ in await room_events(server, world.room_id)] == ["stream.live"]
        async with server.app[SESSION_FACTORY]() as session:
            rows = (await session.scalars(select(StreamSession))).all()
        assert len(rows) == 1 and rows[0].ended_at is None
        await viewer.close()
        await second.pc.close()
