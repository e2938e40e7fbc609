"""Clients whose `max-bundle` policy offers every section but the first as bundle-only (port 0 and
`a=bundle-only`, RFC 8843 §7.3): publishers' audio is forwarded, viewers get it, and the server
keeps no receiver running for media nothing reads (memory and threads stay flat). Played by
aiortc peers with their offers rewritten the way max-bundle clients write them."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import psutil
import pytest
import testpattern
from helpers import wait_for
from test_media import MEDIA_TIMEOUT, urls

from livecommerce.appkeys import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.timeout(240)]

TRANSPORT_LINES = (
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:",
    "a=setup:",
    "a=candidate:",
    "a=end-of-candidates",
)


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
