"""An independent WHIP client: FFmpeg's own `whip` muxer (bundled with PyAV) publishes H.264 and
Opus, and an aiortc viewer receives them over WHEP as H.264, untouched, for as long as FFmpeg
streams."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fractions
import multiprocessing
import time
from collections.abc import AsyncIterator
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
import testpattern
from aiortc import RTCRtpReceiver
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import wait_for
from sqlalchemy import func, select
from test_media import room_events

from livecommerce.appkeys import MEDIA, SESSION_FACTORY
from livecommerce.db.models import Room, RoomStatus, StreamSession

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

WIDTH, HEIGHT, FPS = 640, 360, 15


def p256_certificate(directory: Path) -> tuple[Path, Path]:
    """FFmpeg's default DTLS certificate is P-224, which aiortc's TLS refuses; give it P-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffmpeg-whip")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def ffmpeg_publish(
    url: str, stream_key: str, cert_file: Path | None, key_file: Path | None, stop: Event, seconds: int = 60
) -> int:
    """Encode a moving pattern (H.264) and a tone (Opus) and mux them to the WHIP URL until stopped
    or for `seconds`.

    Runs in its own process: the muxer's blocking network calls hold the GIL."""
    options = {"authorization": stream_key}
    if cert_file is not None and key_file is not None:
        options |= {"cert_file": str(cert_file), "key_file": str(key_file)}
    container = av.open(url, "w", format="whip", options=options)
    try:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "g": str(FPS)}
        audio = container.add_stream("libopus", rate=48000)
        audio.layout = "stereo"
        frames = 0
        samples = 0
        while not stop.is_set() and frames < FPS * seconds:
            luma = np.full((HEIGHT, WIDTH), 60, dtype=np.uint8)
            luma[:, (frames * 8) % WIDTH :][:, :24] = 235
            frame = av.VideoFrame.from_ndarray(
                np.concatenate([luma, np.full((HEIGHT // 2, WIDTH), 128, dtype=np.uint8)]), format="yuv420p"
            )
            frame.pts, frame.time_base = frames, fractions.Fraction(1, FPS)
            container.mux(video.encode(frame))
            while samples < (frames + 1) * 48000 // FPS:
                tone = (np.sin(np.arange(samples, samples + 960) / 48000 * 2 * np.pi * 440) * 8000).astype(
                    np.int16
                )
                chunk = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None, :], format="s16", layout="stereo")
                chunk.sample_rate, chunk.pts = 48000, samples
                container.mux(audio.encode(chunk))
                samples += 960
            frames += 1
            stop.wait(1 / FPS)
        return frames
    finally:
        container.close()


@contextlib.asynccontextmanager
async def ffmpeg_publisher(server, world, tmp_path, *, seconds: int = 60) -> AsyncIterator[BaseProcess]:
    """FFmpeg publishing to the room in its own process, stopped (and checked) on the way out."""
    cert_file, key_file = p256_certificate(tmp_path)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    publisher = context.Process(
        target=ffmpeg_publish, args=(whip, world.stream_key, cert_file, key_file, stop, seconds), daemon=True
    )
    publisher.start()
    try:
        await wait_for(
            lambda: world.room_id in server.app[MEDIA].streams or not publisher.is_alive(),
            timeout=60,
            message="FFmpeg's WHIP session",
        )
        assert publisher.is_alive(), f"FFmpeg's WHIP muxer exited with {publisher.exitcode}"
        yield publisher
    finally:
        stop.set()
        await asyncio.to_thread(publisher.join, 30)
        if publisher.is_alive():
            publisher.kill()
    assert publisher.exitcode == 0


async def test_ffmpeg_whip_muxer_publishes_h264_and_opus_to_viewers(server, tmp_path):
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path):
        stream = server.app[MEDIA].streams[world.room_id]
        assert stream.codec_names == {"video": "H264", "audio": "opus"}
        async with aiohttp.ClientSession() as http:
            viewer = await testpattern.play(http, f"{server.url}/api/rooms/{world.room_id}/whep")
            await wait_for(
                lambda: viewer.video_frames >= 10 and viewer.audio_frames >= 20,
                timeout=60,
                message="the viewer receives FFmpeg's H.264 and Opus",
            )
            assert viewer.first_frame_keyframe is True
            assert viewer.sizes == {(WIDTH, HEIGHT)}
            assert viewer.decode_errors == 0
            await viewer.close()


@pytest.mark.timeout(300)
async def test_ffmpeg_publisher_that_stops_answering_consent_checks_stays_live_while_its_media_flows(
    server, tmp_path
):
    """FFmpeg 8 answers the first ICE consent check and none while it streams; without media
    counting as consent the server would drop it after about 30 s (RFC 7675's expiry)."""
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=100):
        stream = server.app[MEDIA].streams[world.room_id]
        async with aiohttp.ClientSession() as http:
            viewer = await testpattern.play(http, f"{server.url}/api/rooms/{world.room_id}/whep")
            started = time.monotonic()
            while time.monotonic() - started < 90:
                before = viewer.video_frames
                await wait_for(
                    lambda before=before: viewer.video_frames >= before + FPS,
                    timeout=15,
                    message=f"video frames {time.monotonic() - started:.0f} s into FFmpeg's broadcast",
                )
            assert stream.state == "live" and stream.resumes == 0
            assert server.app[MEDIA].streams.get(world.room_id) is stream
            assert viewer.decode_errors == 0
            await viewer.close()


async def test_a_viewer_offering_only_constrained_baseline_plays_ffmpegs_baseline_h264(server, tmp_path):
    """FFmpeg offers profile-level-id 42000d (baseline, level 1.3); a browser-like viewer offers
    constrained baseline 42e01f only. H.264 matches by profile compatibility, levels aside."""
    world = await server.seed()
    constrained_baseline = [
        codec
        for codec in RTCRtpReceiver.getCapabilities("video").codecs
        if codec.mimeType == "video/H264" and codec.parameters.get("profile-level-id") == "42e01f"
    ]
    async with ffmpeg_publisher(server, world, tmp_path), aiohttp.ClientSession() as http:
        viewer = await testpattern.play(
            http, f"{server.url}/api/rooms/{world.room_id}/whep", video_codecs=constrained_baseline
        )
        await wait_for(lambda: viewer.video_frames >= 10, timeout=60, message="H.264 at the viewer")
        assert viewer.sizes == {(WIDTH, HEIGHT)}
        assert viewer.decode_errors == 0
        await viewer.close()


async def test_a_publisher_whose_dtls_handshake_fails_opens_no_broadcast(server):
    """FFmpeg with its default P-224 certificate gets its answer (201) but fails DTLS: no media
    ever flows, so no stream session, no live room and no stream.live/stream.ended events."""
    world = await server.seed()
    context = multiprocessing.get_context("spawn")
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    publisher = context.Process(
        target=ffmpeg_publish, args=(whip, world.stream_key, None, None, context.Event(), 10), daemon=True
    )
    publisher.start()
    await asyncio.to_thread(publisher.join, 60)
    if publisher.is_alive():
        publisher.kill()
    assert publisher.exitcode != 0
    await wait_for(lambda: world.room_id not in server.app[MEDIA].streams, timeout=30, message="no stream")
    async with server.app[SESSION_FACTORY]() as session:
        sessions = await session.scalar(
            select(func.count()).select_from(StreamSession).where(StreamSession.room_id == world.room_id)
        )
        status = await session.scalar(select(Room.status).where(Room.id == world.room_id))
    assert sessions == 0 and status == RoomStatus.OFFLINE
    assert [kind for kind, _ in await room_events(server, world.room_id) if kind.startswith("stream.")] == []
