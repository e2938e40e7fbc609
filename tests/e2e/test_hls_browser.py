"""The watch page falls back to LL-HLS: in headless Chromium, with the node full for WebRTC
(503), the page plays FFmpeg's H.264 live through hls.js and says it is playing HLS."""

from __future__ import annotations

import pytest
from browser_fixtures import TIMEOUT_MS, browser, people, server, video_plays
from test_media_ffmpeg import WIDTH, ffmpeg_publisher

from livecommerce.appkeys import MEDIA

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]
__all__ = ["browser", "people", "server"]


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
