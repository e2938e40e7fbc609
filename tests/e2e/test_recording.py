"""Recording: FFmpeg's H.264 live is recorded as its CMAF segments, the VOD playlist plays end
to end as long as the live lasted, staff list and delete recordings and mark clips, old ones
expire; and a store that fails mid-live stops the recording, not the live."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta

import aiohttp
import av
import pytest
import testpattern
from helpers import wait_for
from sqlalchemy import select
from test_hls import get, segment_uris
from test_media_ffmpeg import HEIGHT, WIDTH, ffmpeg_publisher

from livecommerce.appkeys import MEDIA, SESSION_FACTORY
from livecommerce.db.models import Recording, StreamSession

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]
PUBLISHED_SECONDS = 12


async def recording_row(server, room_id: int) -> Recording | None:
    async with server.app[SESSION_FACTORY]() as session:
        return await session.scalar(select(Recording).where(Recording.room_id == room_id))


async def test_a_recordings_vod_playlist_plays_end_to_end_as_long_as_the_live(server, tmp_path):
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=PUBLISHED_SECONDS) as publisher:
        # FFmpeg streams 12 s, then ends the live (DELETE)
        await wait_for(lambda: not publisher.is_alive(), timeout=90, interval=0.5, message="FFmpeg's 12 s")
    await wait_for(lambda: world.room_id not in server.app[MEDIA].streams, timeout=60, message="the end")

    async def complete():
        row = await recording_row(server, world.room_id)
        return row is not None and row.state == "complete"

    await wait_for(complete, timeout=30, interval=0.2, message="the recording's playlist")
    row = await recording_row(server, world.room_id)
    live_seconds = PUBLISHED_SECONDS  # the frames FFmpeg sent: 12 s at 15 fps
    assert row.duration_seconds == pytest.approx(live_seconds, abs=1.0)
    async with server.app[SESSION_FACTORY]() as session:
        live = await session.get(StreamSession, row.stream_session_id)
    # the stream session lasts a little longer: from the first frame to FFmpeg's DELETE
    assert (live.ended_at - live.started_at).total_seconds() == pytest.approx(live_seconds, abs=3.0)
    assert row.error == "" and row.segments >= 5 and row.size_bytes > 0

    base = f"{server.url}/recordings/{row.stream_session_id}/"
    async with aiohttp.ClientSession() as http:
        status, headers, body = await get(http, base + "index.m3u8")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
        playlist = body.decode()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
        listed = sum(
            float(line[8:].rstrip(",")) for line in playlist.splitlines() if line.startswith("#EXTINF:")
        )
        assert listed == pytest.approx(row.duration_seconds, abs=0.01)
        files = [(await get(http, base + "init.mp4"))[2]]
        for uri in segment_uris(playlist):
            status, headers, data = await get(http, base + uri)
            assert status == 200 and "immutable" in headers["Cache-Control"]
            files.append(data)
    container = av.open(io.BytesIO(b"".join(files)))
    sizes, video_times, audio_frames = set(), [], 0
    for frame in container.decode(video=0, audio=0):
        if isinstance(frame, av.VideoFrame):
            sizes.add((frame.width, frame.height))
            video_times.append(float(frame.time))
        else:
            audio_frames += 1
    container.close()
    assert sizes == {(WIDTH, HEIGHT)}
    played = max(video_times) - min(video_times)
    assert played == pytest.approx(live_seconds, abs=1.0)
    assert audio_frames >= 50 * (live_seconds - 1)

    # the console's list, a clip, then deleting it (files and row)
    headers = {"Authorization": f"Bearer {world.tokens['anchor']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{server.url}/api/rooms/{world.room_id}/recordings") as response:
            listed_rows = (await response.json())["recordings"]
        assert [r["stream_session_id"] for r in listed_rows] == [row.stream_session_id]
        assert listed_rows[0]["duration_seconds"] == pytest.approx(row.duration_seconds, abs=0.01)
        assert listed_rows[0]["size_bytes"] == row.size_bytes and listed_rows[0]["state"] == "complete"
        clip_url = f"{server.url}/api/recordings/{row.stream_session_id}/clips"
        async with http.post(clip_url, json={"offset_seconds": 3.5, "title": "the red one"}) as response:
            assert response.status == 201
            clip = await response.json()
        assert clip["url"] == f"/replay/{row.stream_session_id}?t=3.5"
        async with http.post(clip_url, json={"offset_seconds": 999}) as response:
            assert response.status == 400
        async with http.delete(f"{server.url}/api/recordings/{row.stream_session_id}") as response:
            assert response.status == 204
        assert await recording_row(server, world.room_id) is None
        assert not (server.app[MEDIA].settings.recordings_path / str(row.stream_session_id)).exists()
        status, _, _ = await get(http, base + "index.m3u8")
        assert status == 404
    async with aiohttp.ClientSession() as http:  # a viewer may not list or delete
        async with http.get(f"{server.url}/api/rooms/{world.room_id}/recordings") as response:
            assert response.status == 401


async def test_old_recordings_expire_after_the_retention_period(server, tmp_path):
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=4) as publisher:
        await wait_for(lambda: not publisher.is_alive(), timeout=60, interval=0.5, message="FFmpeg's 4 s")

    async def complete():
        row = await recording_row(server, world.room_id)
        return row is not None and row.state == "complete"

    await wait_for(complete, timeout=60, interval=0.2, message="the recording")
    recordings = server.app[MEDIA].recordings
    row = await recording_row(server, world.room_id)
    assert await recordings.expire(datetime.now(UTC)) == []
    later = datetime.now(UTC) + timedelta(days=recordings.retention_days, minutes=1)
    assert await recordings.expire(later) == [row.stream_session_id]
    assert await recording_row(server, world.room_id) is None
    assert not (server.app[MEDIA].settings.recordings_path / str(row.stream_session_id)).exists()


async def test_a_store_that_fails_mid_live_stops_the_recording_and_the_live_goes_on(server, tmp_path):
    world = await server.seed()
    store = server.app[MEDIA].settings.recordings_path
    async with ffmpeg_publisher(server, world, tmp_path, seconds=60), aiohttp.ClientSession() as http:

        async def writing():
            row = await recording_row(server, world.room_id)
            return row is not None and row.segments >= 2

        await wait_for(writing, timeout=60, interval=0.2, message="a recording under way")
        row = await recording_row(server, world.room_id)
        # the recording's directory turns into a file: every write now fails, as on a lost disk
        folder = store / str(row.stream_session_id)
        shutil.rmtree(folder)
        folder.write_text("not a directory")

        async def failed():
            row = await recording_row(server, world.room_id)
            return row.state == "failed"

        await wait_for(failed, timeout=30, interval=0.2, message="the recording to stop")
        row = await recording_row(server, world.room_id)
        assert row.error.startswith("cannot write ")

        # the live goes on: still live, and its HLS playlist keeps growing
        stream = server.app[MEDIA].streams[world.room_id]
        assert stream.state == "live"
        output = stream.outputs[0]
        before = output.playlist.current.msn
        await wait_for(lambda: output.playlist.current.msn >= before + 2, timeout=30, message="more segments")
        status, _, _ = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        assert status == 200

        async with http.get(f"{server.url}/metrics") as response:
            metrics = await response.text()
        assert "livecommerce_recording_failures_total 1.0" in metrics
        headers = {"Authorization": f"Bearer {world.tokens['operator']}"}
        async with http.get(
            f"{server.url}/api/rooms/{world.room_id}/recordings", headers=headers
        ) as response:
            (listed,) = (await response.json())["recordings"]
        assert listed["state"] == "failed" and listed["error"] == row.error


class KeyframelessH264(testpattern.PatternVideoTrack):
    """H.264 whose keyframes are lost on the way: the server sees only the frames between them."""

    def _encode(self) -> list[av.Packet]:
        return [packet for packet in super()._encode() if not packet.is_keyframe]


async def test_a_live_that_ends_before_its_first_segment_records_nothing_and_fails_nothing(server):
    """The broadcast starts with its first frame, HLS segments with the first keyframe: a live
    that ends before one has a stream session but nothing to record, and its recorder ends
    cleanly (it used to fail on the missing start time)."""
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    recordings = server.app[MEDIA].recordings
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=KeyframelessH264(width=480, height=272, fps=15, bitrate=300_000, codec="h264"),
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )
        await wait_for(
            lambda: (
                world.room_id in server.app[MEDIA].streams
                and server.app[MEDIA].streams[world.room_id].session_id is not None
            ),
            timeout=60,
            message="the broadcast",
        )
        await wait_for(
            lambda: any(r.session_id for r in recordings.recorders), timeout=30, message="a recorder"
        )
        recorders = list(recordings.recorders)
        async with http.delete(publisher.location, headers={"Authorization": f"Bearer {world.stream_key}"}):
            pass
        await publisher.pc.close()
    for recorder in recorders:
        await recorder.task
        assert recorder.task.exception() is None
    assert await recording_row(server, world.room_id) is None
