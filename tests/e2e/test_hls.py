"""LL-HLS from the origin: FFmpeg publishes H.264 and Opus over WHIP, and the room's playlist,
parts and segments are read the way an HLS player and a CDN read them; the samples in the
segments are the publisher's own frames (remuxed, never decoded or re-encoded)."""

from __future__ import annotations

import io
import re
import threading
import time

import aiohttp
import av
import pytest
import testpattern
from helpers import wait_for
from test_media_ffmpeg import HEIGHT, WIDTH, ffmpeg_publisher

from livecommerce.appkeys import MEDIA
from livecommerce.media import h264
from livecommerce.media.cmaf import CmafMuxer

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]


def tags(playlist: str) -> dict[str, list[str]]:
    """Every `#EXT-X-...` tag's values, in order, by tag name."""
    found: dict[str, list[str]] = {}
    for line in playlist.splitlines():
        if line.startswith("#EXT"):
            name, _, value = line.partition(":")
            found.setdefault(name, []).append(value)
    return found


def attributes(value: str) -> dict[str, str]:
    return {key: val.strip('"') for key, val in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', value)}


def check_well_formed(playlist: str) -> dict[str, list[str]]:
    """The rules of RFC 8216bis (and its low-latency extension) a live playlist must keep."""
    lines = playlist.splitlines()
    assert lines[0] == "#EXTM3U"
    found = tags(playlist)
    target = int(found["#EXT-X-TARGETDURATION"][0])
    part_target = float(attributes(found["#EXT-X-PART-INF"][0])["PART-TARGET"])
    control = attributes(found["#EXT-X-SERVER-CONTROL"][0])
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(control["PART-HOLD-BACK"]) >= 3 * part_target
    assert int(found["#EXT-X-MEDIA-SEQUENCE"][0]) >= 0
    assert attributes(found["#EXT-X-MAP"][0])["URI"].endswith("/init.mp4")
    for extinf in found.get("#EXTINF", []):
        assert round(float(extinf.rstrip(","))) <= target
    parts = [attributes(value) for value in found["#EXT-X-PART"]]
    assert parts
    for part in parts:
        assert 0 < float(part["DURATION"]) <= part_target
    hint = attributes(found["#EXT-X-PRELOAD-HINT"][0])
    assert hint["TYPE"] == "PART"
    # URIs follow their tags: a segment line after each EXTINF
    for index, line in enumerate(lines):
        if line.startswith("#EXTINF"):
            assert lines[index + 1].endswith(".m4s") and not lines[index + 1].startswith("#")
    return found


def segment_uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with http.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def test_ffmpeg_live_is_served_as_ll_hls_that_a_player_reads_and_decodes(server, tmp_path):
    world = await server.seed()
    base = f"{server.url}/hls/{world.room_id}/"
    async with ffmpeg_publisher(server, world, tmp_path, seconds=90), aiohttp.ClientSession() as http:
        playlist = ""

        async def segments_listed(count: int) -> bool:
            nonlocal playlist
            status, _, body = await get(http, base + "index.m3u8")
            playlist = body.decode() if status == 200 else ""
            return len(segment_uris(playlist)) >= count

        await wait_for(
            lambda: segments_listed(3), timeout=90, interval=0.5, message="three complete HLS segments"
        )
        found = check_well_formed(playlist)

        status, headers, _ = await get(http, base + "index.m3u8")
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert headers["Cache-Control"] == "public, max-age=1"
        assert headers["Access-Control-Allow-Origin"] == "*"

        # blocking reload: ask for the part the preload hint names; the answer waits for it
        hint = attributes(found["#EXT-X-PRELOAD-HINT"][0])["URI"]
        msn, part = (int(n) for n in hint.rsplit("/", 1)[1].removesuffix(".m4s").split("."))
        started = time.monotonic()
        status, _, body = await get(http, f"{base}index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
        waited = time.monotonic() - started
        assert status == 200
        target = int(found["#EXT-X-TARGETDURATION"][0])
        assert waited < 3 * target
        reloaded = body.decode()
        assert hint in [attributes(v)["URI"] for v in tags(reloaded)["#EXT-X-PART"]] or (
            f"{msn}.m4s" in reloaded
        )
        # a request far past the live edge is refused (RFC 8216bis §6.2.5.2)
        status, _, _ = await get(http, f"{base}index.m3u8?_HLS_msn={msn + 10}")
        assert status == 400

        # the init segment and the segments: immutable, CORS, and a real MP4 that PyAV decodes
        init_uri = attributes(found["#EXT-X-MAP"][0])["URI"]
        status, headers, init = await get(http, base + init_uri)
        assert status == 200 and headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["Access-Control-Allow-Origin"] == "*"
        media = [init]
        durations = [float(v.rstrip(",")) for v in found["#EXTINF"]]
        for uri in segment_uris(playlist):
            status, headers, body = await get(http, base + uri)
            assert status == 200 and "immutable" in headers["Cache-Control"]
            media.append(body)
        container = av.open(io.BytesIO(b"".join(media)))
        video = next(s for s in container.streams if s.type == "video")
        audio = next(s for s in container.streams if s.type == "audio")
        assert (video.codec_context.name, audio.codec_context.name) == ("h264", "opus")
        sizes = set()
        video_frames = audio_frames = 0
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                sizes.add((frame.width, frame.height))
                video_frames += 1
            else:
                audio_frames += 1
        container.close()
        assert sizes == {(WIDTH, HEIGHT)}
        assert video_frames >= 15 * sum(durations) * 0.9
        assert audio_frames >= 50 * sum(durations) * 0.9

        # every segment but possibly the newest lasts about a keyframe interval (FFmpeg: 1 s)
        assert all(0.5 <= d <= target for d in durations)

        # a part the preload hint names is answered when it exists
        status, _, _ = await get(http, base + hint)
        assert status == 200

        # unknown session, unknown name: 404
        session = init_uri.split("/")[0]
        for bad in (f"{int(session) + 1}/init.mp4", f"{session}/x.m4s", f"{session}/999999.m4s"):
            status, _, _ = await get(http, base + bad)
            assert status == 404, bad


async def test_the_ended_live_playlist_says_so_and_unknown_rooms_are_404(server, tmp_path):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        status, _, body = await get(http, f"{server.url}/hls/999999/index.m3u8")
        assert status == 404 and b'"not_found"' in body
        status, _, _ = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        assert status == 404
        async with ffmpeg_publisher(server, world, tmp_path, seconds=8):
            output = server.app[MEDIA].streams[world.room_id].outputs[0]
            await wait_for(lambda: output.playlist.current is not None, timeout=60, message="HLS starts")
        await wait_for(lambda: world.room_id not in server.app[MEDIA].streams, timeout=60, message="the end")
        status, _, body = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        text = body.decode()
        assert status == 200 and text.rstrip().endswith("#EXT-X-ENDLIST")
        assert "#EXT-X-PRELOAD-HINT" not in text


async def test_a_vp8_live_says_it_has_no_hls(server):
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=testpattern.PatternVideoTrack(fps=15, bitrate=300_000),
            audio=testpattern.ToneAudioTrack(),
        )
        await wait_for(
            lambda: (
                world.room_id in server.app[MEDIA].streams
                and server.app[MEDIA].streams[world.room_id].session_id is not None
            ),
            timeout=60,
            message="the VP8 live",
        )
        status, _, body = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        assert status == 409 and b'"no_hls"' in body
        async with http.get(f"{server.url}/api/rooms/{world.room_id}/stream") as response:
            assert (await response.json())["hls_url"] is None
        await publisher.pc.close()


async def test_hls_samples_are_the_publishers_frames_byte_for_byte_and_nothing_is_decoded(server):
    """The proof that HLS costs no transcoding: every H.264 access unit in the segments is one
    the publisher encoded (NAL units identical), and no decoder ran and no codec was opened."""
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    track = testpattern.PatternVideoTrack(width=480, height=272, fps=15, bitrate=300_000, codec="h264")
    sent: list[bytes] = []
    encode = track._encode

    def recording_encode() -> list[av.Packet]:
        packets = encode()
        sent.extend(bytes(packet) for packet in packets)
        return packets

    track._encode = recording_encode  # type: ignore[method-assign]
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=track,
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )
        stream_ready = lambda: world.room_id in server.app[MEDIA].streams  # noqa: E731
        await wait_for(stream_ready, timeout=60, message="the H.264 live")
        stream = server.app[MEDIA].streams[world.room_id]
        assert stream.codec_names["video"] == "H264"
        output = stream.outputs[0]
        await wait_for(
            lambda: sum(1 for s in output.playlist.segments if s.complete) >= 2,
            timeout=90,
            message="two HLS segments from the aiortc publisher",
        )
        segments = [s for s in output.playlist.segments if s.complete]
        muxer = output._muxer
        assert muxer is not None
        assert all(s.codec_context is None or not s.codec_context.is_open for s in muxer.streams)
        assert [t.name for t in threading.enumerate() if t.name.endswith("-decoder")] == []

        published = {tuple(h264.nal_units(frame)) for frame in sent}
        container = av.open(io.BytesIO(output.init + b"".join(s.data for s in segments)))
        checked = 0
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            data, units = bytes(packet), []
            while data:
                length = int.from_bytes(data[:4], "big")
                units.append(data[4 : 4 + length])
                data = data[4 + length :]
            assert tuple(units) in published
            checked += 1
        container.close()
        assert checked >= 15
        assert sum(s.duration for s in segments) == pytest.approx(checked / 15, abs=0.2)
        await publisher.pc.close()


async def test_a_failing_remux_ends_the_hls_playlist_and_the_live_goes_on(server, monkeypatch):
    """Whatever breaks in the HLS output (here the muxer raises, as on a malformed frame) stays
    there: the playlist ends, WebRTC viewers keep receiving, the live stays live."""
    world = await server.seed()
    write = CmafMuxer.write
    calls = {"n": 0}

    def failing_write(self, kind, data, pts, keyframe):
        calls["n"] += 1
        if calls["n"] > 100:
            raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
        return write(self, kind, data, pts, keyframe)

    monkeypatch.setattr(CmafMuxer, "write", failing_write)
    whip, whep = (f"{server.url}/api/rooms/{world.room_id}/{kind}" for kind in ("whip", "whep"))
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=testpattern.PatternVideoTrack(width=480, height=272, fps=15, bitrate=300_000, codec="h264"),
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )
        viewer = await testpattern.play(http, whep, decode=False, count_only=True)
        await wait_for(lambda: world.room_id in server.app[MEDIA].streams, timeout=60, message="the live")
        stream = server.app[MEDIA].streams[world.room_id]
        output = stream.outputs[0]
        await wait_for(lambda: output.closed, timeout=60, message="the HLS output to fail")
        status, _, body = await get(http, f"{server.url}/hls/{world.room_id}/index.m3u8")
        assert status == 200 and body.decode().rstrip().endswith("#EXT-X-ENDLIST")
        before = viewer.video_frames
        await wait_for(lambda: viewer.video_frames >= before + 30, timeout=60, message="WebRTC goes on")
        assert stream.state == "live"
        await viewer.close()
        await publisher.pc.close()


async def test_a_resumed_live_continues_its_hls_from_the_new_publishers_first_keyframe(server):
    """The publisher drops and another publisher resumes within the grace period: the HLS
    timeline goes on, and the first video after the resume is a keyframe (the new publisher's
    pictures cannot refer to the old ones), so every segment decodes."""
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"

    async def publish():
        return await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=testpattern.PatternVideoTrack(width=480, height=272, fps=15, bitrate=300_000, codec="h264"),
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )

    async with aiohttp.ClientSession() as http:
        first = await publish()
        await wait_for(lambda: world.room_id in server.app[MEDIA].streams, timeout=60, message="the live")
        stream = server.app[MEDIA].streams[world.room_id]
        output = stream.outputs[0]
        await wait_for(
            lambda: output.playlist.current is not None and output.playlist.current.msn >= 1, timeout=60
        )
        await first.pc.close()  # the uplink drops
        await wait_for(lambda: stream.state == "grace", timeout=60, message="the grace period")
        resumed_at = output.playlist.current.msn
        second = await publish()
        await wait_for(
            lambda: output.playlist.current.msn >= resumed_at + 2, timeout=90, message="HLS after the resume"
        )
        assert stream.resumes == 1 and stream.outputs == [output]
        segments = [s for s in output.playlist.segments if s.complete]
        assert all(segment.parts[0].independent for segment in segments)
        container = av.open(io.BytesIO(output.init + b"".join(s.data for s in segments)))
        decoded = 0
        for frame in container.decode(video=0):
            assert (frame.width, frame.height) == (480, 272)
            decoded += 1
        container.close()
        assert decoded >= 15 * sum(s.duration for s in segments) * 0.8
        await second.pc.close()
