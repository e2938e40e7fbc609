"""Clients whose `max-bundle` policy offers every section but the first as bundle-only (port 0 and
`a=bundle-only`, RFC 8843 §7.3): publishers' audio is forwarded, viewers get it, and the server
keeps no receiver running for media nothing reads (memory and threads stay flat). Played by
aiortc peers with the offer rewritten, and by GStreamer's webrtcbin where it is installed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from pathlib import Path

import aiohttp
import psutil
import pytest
import testpattern
from helpers import wait_for
from test_media import MEDIA_TIMEOUT, start_publisher, urls

from livecommerce.media.node import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]

TRANSPORT_LINES = (
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:",
    "a=setup:",
    "a=candidate:",
    "a=end-of-candidates",
)
GST_CLIENT = Path(__file__).with_name("gst_webrtc_client.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def as_max_bundle(sdp: str) -> str:
    """An offer as a max-bundle client sends it: every section after the first with port 0,
    `a=bundle-only` and no transport attributes of its own."""
    out, section = [], 0
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            section += 1
            if section > 1:
                words = line.split(" ")
                out += [" ".join([words[0], "0", *words[2:]]), "a=bundle-only"]
                continue
        if section > 1 and line.startswith(TRANSPORT_LINES):
            continue
        out.append(line)
    return "\r\n".join(out)


def threads() -> set[str]:
    """Threads other than the default executor's workers (which come and go)."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


async def test_max_bundle_publisher_and_viewer_get_audio_and_memory_stays_flat(server):
    world = await server.seed()
    whip, whep = urls(server, world.room_id)
    before = threads()
    process = psutil.Process()
    async with aiohttp.ClientSession() as http:
        await testpattern.publish(
            http,
            whip,
            world.stream_key,
            video=testpattern.PatternVideoTrack(width=352, height=198, fps=10, bitrate=150_000),
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=as_max_bundle,
        )
        viewer = await testpattern.play(http, whep, rewrite_offer=as_max_bundle)
        await wait_for(
            lambda: viewer.video_frames >= 10 and viewer.audio_frames >= 25,
            timeout=MEDIA_TIMEOUT,
            message="video and the bundle-only audio at a max-bundle viewer",
        )
        assert server.app[MEDIA].streams[world.room_id].codec_names.keys() == {"video", "audio"}
        await asyncio.sleep(5)  # settle: buffers and caches of a running stream
        start_rss, start_audio = process.memory_info().rss, viewer.audio_frames
        await asyncio.sleep(60)
        grown = (process.memory_info().rss - start_rss) / 2**20
        assert viewer.audio_frames - start_audio > 60 * 25  # still flowing (50 per second sent)
        assert grown < 20, f"memory grew {grown:.1f} MiB in a minute"
        assert threads() <= before, f"threads left running: {threads() - before}"
        await viewer.close()


# -- GStreamer webrtcbin -------------------------------------------------------------------------


def gstreamer_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON}"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
            "from gi.repository import Gst; Gst.init(None);"
            "assert all(Gst.ElementFactory.find(e) for e in"
            " ('webrtcbin', 'nicesrc', 'vp8enc', 'vp8dec', 'opusenc', 'opusdec', 'rtpvp8pay'))",
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return "GStreamer with webrtcbin, libnice, VP8 and Opus is not installed for the system python3"
    return None


class GstClient:
    """gst_webrtc_client.py in a subprocess, its one-per-second JSON reports collected."""

    def __init__(self, *args: str) -> None:
        self.reports: list[dict] = []
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(GST_CLIENT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.reports.append(json.loads(line))

    @property
    def latest(self) -> dict:
        return self.reports[-1] if self.reports else {}

    async def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 20)


GSTREAMER_MISSING = gstreamer_missing()
gstreamer = pytest.mark.skipif(GSTREAMER_MISSING is not None, reason=GSTREAMER_MISSING or "")


@gstreamer
@pytest.mark.parametrize("policy", ["max-bundle", "max-compat"])
async def test_gstreamer_webrtcbin_publishes_video_and_audio_to_viewers(server, policy):
    world = await server.seed()
    whip, whep = urls(server, world.room_id)
    publisher = GstClient(
        "publish", whip, "--token", world.stream_key, "--bundle-policy", policy, "--seconds", "60"
    )
    try:
        await wait_for(
            lambda: world.room_id in server.app[MEDIA].streams or publisher.proc.poll() is not None,
            timeout=MEDIA_TIMEOUT,
            message="webrtcbin's WHIP session",
        )
        assert publisher.proc.poll() is None, f"webrtcbin exited: {publisher.reports[-3:]}"
        assert server.app[MEDIA].streams[world.room_id].codec_names == {"video": "VP8", "audio": "opus"}
        async with aiohttp.ClientSession() as http:
            viewer = await testpattern.play(http, whep)
            await wait_for(
                lambda: viewer.video_frames >= 15 and viewer.audio_frames >= 50,
                timeout=MEDIA_TIMEOUT,
                message=f"a viewer receives webrtcbin's ({policy}) video and audio",
            )
            assert viewer.decode_errors == 0
            await viewer.close()
    finally:
        await publisher.close()


@gstreamer
@pytest.mark.parametrize("policy", ["max-bundle", "max-compat"])
async def test_gstreamer_webrtcbin_plays_video_and_audio(server, policy):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        await start_publisher(http, server, world)
        player = GstClient("play", whep, "--bundle-policy", policy, "--seconds", "60")
        try:
            await wait_for(
                lambda: player.latest.get("video", 0) >= 15 and player.latest.get("audio", 0) >= 50,
                timeout=MEDIA_TIMEOUT,
                message=f"webrtcbin ({policy}) decodes the stream's video and audio",
            )
        finally:
            await player.close()
