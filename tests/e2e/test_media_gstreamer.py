"""An independent WebRTC stack: GStreamer's webrtcbin publishes over WHIP and plays over WHEP,
with each of its bundle policies, against aiortc peers on the other end. The client is
`gst_webrtc_client.py`, run by the system Python (PyGObject comes from Debian)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import testpattern
from helpers import wait_for
from test_media import MEDIA_TIMEOUT, urls
from test_media_ffmpeg import HEIGHT as FFMPEG_HEIGHT
from test_media_ffmpeg import WIDTH as FFMPEG_WIDTH
from test_media_ffmpeg import ffmpeg_publisher

from livecommerce.appkeys import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]

GST_CLIENT = Path(__file__).with_name("gst_webrtc_client.py")
SYSTEM_PYTHON = "/usr/bin/python3"
DEBIAN_PACKAGES = [
    "gstreamer1.0-tools",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-nice",
    "python3-gi",
    "gir1.2-gst-plugins-bad-1.0",
    "gir1.2-nice-0.1",
]
ELEMENTS = [
    "webrtcbin",
    "nicesrc",
    "vp8enc",
    "vp8dec",
    "opusenc",
    "opusdec",
    "rtpvp8pay",
    "rtph264depay",
    "h264parse",
    "openh264dec",
    "decodebin",
]
PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
    " gi.require_version('GstSdp', '1.0'); gi.require_version('Nice', '0.1');"
    " from gi.repository import Gst, GstWebRTC, GstSdp, Nice"
)
BUNDLE_POLICIES = ["max-bundle", "max-compat", "none"]
WIDTH, HEIGHT = 320, 240


def gstreamer_ready() -> bool:
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("gst-inspect-1.0") is None:
        return False
    if subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True).returncode != 0:
        return False
    return all(subprocess.run(["gst-inspect-1.0", e], capture_output=True).returncode == 0 for e in ELEMENTS)


@pytest.fixture(scope="session")
def gstreamer() -> None:
    """GStreamer with webrtcbin, libnice and their introspection data, installed with apt-get
    when missing; the tests are skipped only where apt-get itself is not available."""
    if gstreamer_ready():
        return
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("GStreamer's webrtcbin is not installed and apt-get is not available to install it")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run([*sudo, apt, "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run([*sudo, apt, "install", "-y", "-qq", *DEBIAN_PACKAGES], check=True, env=env, timeout=900)
    assert gstreamer_ready(), "GStreamer was installed but webrtcbin, libnice or PyGObject is still missing"


class GstClient:
    """The GStreamer client's process and what it has reported so far."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.output: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").strip()
            self.output.append(line)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def last(self, event: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("event") == event), None)

    def exited(self) -> bool:
        return self.process.returncode is not None

    def __str__(self) -> str:
        return "\n".join(self.output[-20:])


def offered_bundle_only(client: GstClient) -> bool:
    """Whether the client's offer had bundle-only sections (what `max-bundle` writes)."""
    answered = client.last("answered")
    assert answered is not None, str(client)
    return "a=bundle-only" in answered["offer"]


@contextlib.asynccontextmanager
async def gst_client(*args: str) -> AsyncIterator[GstClient]:
    process = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(GST_CLIENT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    client = GstClient(process)
    try:
        yield client
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        await client._reader


@pytest.mark.parametrize("bundle_policy", BUNDLE_POLICIES)
async def test_gstreamer_publishes_vp8_and_opus_over_whip_to_an_aiortc_viewer(
    server, gstreamer, bundle_policy
):
    world = await server.seed()
    whip, whep = urls(server, world.room_id)
    publish = ("publish", whip, "--token", world.stream_key, "--bundle-policy", bundle_policy)
    async with gst_client(*publish, "--size", f"{WIDTH}x{HEIGHT}") as publisher:
        await wait_for(
            lambda: (
                (world.room_id in server.app[MEDIA].streams and publisher.last("answered"))
                or publisher.exited()
            ),
            timeout=MEDIA_TIMEOUT,
            message="GStreamer's WHIP session",
        )
        assert not publisher.exited(), str(publisher)
        assert offered_bundle_only(publisher) == (bundle_policy == "max-bundle")
        assert server.app[MEDIA].streams[world.room_id].codec_names == {"video": "VP8", "audio": "opus"}
        async with aiohttp.ClientSession() as http:
            viewer = await testpattern.play(http, whep)
            try:
                await wait_for(
                    lambda: viewer.video_frames >= 10 and viewer.audio_frames >= 20,
                    timeout=MEDIA_TIMEOUT,
                    message=f"GStreamer's VP8 and Opus at the viewer ({bundle_policy})",
                )
                assert viewer.sizes == {(WIDTH, HEIGHT)}
                assert viewer.decode_errors == 0
            finally:
                await viewer.close()
    await wait_for(
        lambda: world.room_id not in server.app[MEDIA].streams,
        timeout=MEDIA_TIMEOUT,
        message="the stream ends with GStreamer's DELETE",
    )


@pytest.mark.parametrize("bundle_policy", BUNDLE_POLICIES)
async def test_gstreamer_plays_over_whep_what_aiortc_publishes(server, gstreamer, bundle_policy):
    world = await server.seed()
    whip, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=testpattern.PatternVideoTrack(width=352, height=198, fps=15, bitrate=300_000),
            audio=testpattern.ToneAudioTrack(),
        )
        try:
            async with gst_client("play", whep, "--bundle-policy", bundle_policy) as player:

                def decoding() -> bool:
                    frames = player.last("frames") or {}
                    return player.exited() or (frames.get("video", 0) >= 10 and frames.get("audio", 0) >= 10)

                await wait_for(
                    decoding, timeout=MEDIA_TIMEOUT, message=f"GStreamer decoding ({bundle_policy})"
                )
                assert not player.exited(), str(player)
                assert offered_bundle_only(player) == (bundle_policy == "max-bundle")
                assert player.last("frames")["size"] == [352, 198]
                assert player.last("connection")["state"] == "connected"
        finally:
            await publisher.pc.close()


async def test_gstreamer_offering_constrained_baseline_plays_ffmpegs_baseline_h264(
    server, gstreamer, tmp_path
):
    """The profile case between two independent clients: FFmpeg's whip muxer publishes
    H.264 Baseline level 1.3 (42000d); GStreamer offers only Constrained Baseline level 3.1
    (42e01f), as browsers do. Matched by profile compatibility, levels aside, it plays."""
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with ffmpeg_publisher(server, world, tmp_path, seconds=100):
        async with gst_client("play", whep, "--video", "h264") as player:

            def decoding() -> bool:
                frames = player.last("frames") or {}
                return player.exited() or (frames.get("video", 0) >= 10 and frames.get("audio", 0) >= 10)

            await wait_for(decoding, timeout=MEDIA_TIMEOUT, message="GStreamer decoding FFmpeg's H.264")
            assert not player.exited(), str(player)
            answered = player.last("answered")
            assert "profile-level-id=42e01f" in answered["offer"]
            assert "H264/90000" in answered["answer"]
            assert player.last("frames")["size"] == [FFMPEG_WIDTH, FFMPEG_HEIGHT]
