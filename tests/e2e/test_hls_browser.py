"""The watch page falls back to LL-HLS: in headless Chromium, with the node full for WebRTC
(503), or where WebRTC cannot connect, the page plays FFmpeg's H.264
live through hls.js and says it is playing HLS. And the
studio's publisher (whip.js) offers H.264 first, so a browser's live has HLS."""

from __future__ import annotations

import aiohttp
import pytest
from browser_fixtures import PHONE, TIMEOUT_MS, browser, people, server, video_plays
from helpers import wait_for
from playwright.async_api import Browser
from test_media_browser import pages_origin
from test_media_ffmpeg import WIDTH, ffmpeg_publisher

from livecommerce.appkeys import MEDIA

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]
__all__ = ["browser", "pages_origin", "people", "server"]


async def test_a_full_node_sends_the_watch_page_to_hls_which_plays(server, people, tmp_path):
    world = await server.seed()
    server.app[MEDIA].settings.max_viewers_per_node = 0  # every WHEP offer: 503 over_capacity
    async with ffmpeg_publisher(server, world, tmp_path, seconds=120):
        watch = await people.open(f"/watch/{world.room_id}")
        await video_plays(watch)
        await watch.wait_for_function(
            "() => document.querySelector('#transport').dataset.transport === 'hls'", timeout=TIMEOUT_MS
        )
        assert await watch.evaluate("() => document.querySelector('#video').videoWidth") == WIDTH
        assert "HLS" in await watch.locator("#transport").inner_text()
        assert server.app[MEDIA].viewer_count == 0  # no WebRTC session was made
        # the room socket still works on HLS: the live badge says live
        assert await watch.locator("#live-badge").get_attribute("data-state") == "live"
    # the browser logs the refused WHEP offer itself; nothing else failed
    assert [e for e in people.console_errors if "503" not in e or "/whep" not in e] == []


async def test_a_browser_publishing_with_whip_js_goes_live_in_h264_with_hls(
    browser: Browser, server, pages_origin
):
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    anchor = await browser.new_context()
    try:
        studio = await anchor.new_page()
        await studio.goto(f"{pages_origin}/pages/publish.html?whip={whip}&key={world.stream_key}")
        await studio.wait_for_function("() => window.result.state !== 'starting'", timeout=TIMEOUT_MS)
        await wait_for(lambda: world.room_id in server.app[MEDIA].streams, timeout=30, message="the stream")
        stream = server.app[MEDIA].streams[world.room_id]
        assert stream.codec_names["video"] == "H264"  # Chromium offers VP8 first unless told otherwise
        async with aiohttp.ClientSession() as http:

            async def playlist_listed() -> bool:
                async with http.get(f"{server.url}/hls/{world.room_id}/index.m3u8") as response:
                    return response.status == 200 and "#EXT-X-PART:" in await response.text()

            await wait_for(playlist_listed, timeout=60, interval=0.5, message="the browser live's HLS")
        await studio.evaluate("window.session.stop()")
    finally:
        await anchor.close()


# What a network that blocks WebRTC's UDP leaves of ICE: no candidate of either side reaches the
# other (the signalling over HTTPS still works), so the connection never gets past checking.
NO_ICE_PATH = """
(() => {
  const strip = (description) =>
    description && { type: description.type, sdp: description.sdp.replace(/a=candidate:[^\\r\\n]*\\r?\\n/g, "") };
  const proto = RTCPeerConnection.prototype;
  const local = Object.getOwnPropertyDescriptor(proto, "localDescription").get;
  Object.defineProperty(proto, "localDescription", { get() { return strip(local.call(this)); } });
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = function (description) { return setRemote.call(this, strip(description)); };
})();
"""


async def test_a_viewer_whose_webrtc_cannot_connect_plays_hls(browser: Browser, server, tmp_path):
    world = await server.seed()
    async with ffmpeg_publisher(server, world, tmp_path, seconds=120):
        context = await browser.new_context(viewport=PHONE, base_url=server.url)
        try:
            await context.add_init_script(NO_ICE_PATH)
            watch = await context.new_page()
            errors: list[str] = []
            watch.on("pageerror", lambda error: errors.append(str(error)))
            await watch.goto(f"/watch/{world.room_id}")
            await watch.wait_for_function(
                "() => document.querySelector('#transport').dataset.transport === 'hls'", timeout=TIMEOUT_MS
            )
            await video_plays(watch)
            assert errors == []
        finally:
            await context.close()
