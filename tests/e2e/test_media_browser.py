"""A real browser on both ends: headless Chromium with a fake camera publishes over WHIP from a
page on another origin (CORS), and a second page plays the room over WHEP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web
from browser_fixtures import TIMEOUT_MS, browser, server, video_plays
from helpers import ROOT, wait_for
from playwright.async_api import Browser

from livecommerce.appkeys import MEDIA

pytestmark = [pytest.mark.browser, pytest.mark.media, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "server"]

PAGES = ROOT / "tests" / "media_pages"
JS = ROOT / "web" / "js"


@pytest_asyncio.fixture(loop_scope="module")
async def pages_origin() -> AsyncIterator[str]:
    """The test pages and the browser modules, served from a second origin."""
    app = web.Application()
    app.router.add_static("/js", JS)
    app.router.add_static("/pages", PAGES)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_browser_publishes_over_whip_and_another_browser_plays_over_whep(
    browser: Browser, server, pages_origin
):
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    whep = f"{server.url}/api/rooms/{world.room_id}/whep"
    errors: list[str] = []
    anchor = await browser.new_context()
    viewer = await browser.new_context()
    try:
        studio = await anchor.new_page()
        studio.on("pageerror", lambda error: errors.append(str(error)))
        await studio.goto(f"{pages_origin}/pages/publish.html?whip={whip}&key={world.stream_key}")
        await studio.wait_for_function("() => window.result.state !== 'starting'", timeout=TIMEOUT_MS)
        assert (await studio.evaluate("window.result"))["state"] == "published"
        await wait_for(lambda: world.room_id in server.app[MEDIA].streams, timeout=30, message="the stream")
        stream = server.app[MEDIA].streams[world.room_id]
        await wait_for(
            lambda: stream.fanouts["video"].frames_in > 0, timeout=60, message="the camera's frames"
        )

        watch = await viewer.new_page()
        watch.on("pageerror", lambda error: errors.append(str(error)))
        await watch.goto(f"{pages_origin}/pages/play.html?whep={whep}")
        await watch.wait_for_function("() => window.result.state !== 'starting'", timeout=TIMEOUT_MS)
        assert (await watch.evaluate("window.result"))["state"] == "playing"
        await video_plays(watch)
        state = await watch.evaluate("window.videoState()")
        assert state["videoWidth"] == 640 and state["videoHeight"] == 360
        assert state["audioTracks"] == 1

        # Leaving from the page: DELETE on the WHEP and WHIP session resources.
        await watch.evaluate("window.session.stop()")
        await wait_for(lambda: not stream.viewers, timeout=30, message="the viewer's session to end")
        await studio.evaluate("window.session.stop()")
        await wait_for(lambda: stream.state == "ended", timeout=30, message="the stream to end")
    finally:
        await anchor.close()
        await viewer.close()
    assert errors == []


async def test_a_wrong_key_in_the_browser_is_a_typed_error(browser: Browser, server, pages_origin):
    world = await server.seed()
    whip = f"{server.url}/api/rooms/{world.room_id}/whip"
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{pages_origin}/pages/publish.html?whip={whip}&key=wrong")
        await page.wait_for_function("() => window.result.state !== 'starting'", timeout=TIMEOUT_MS)
        result = await page.evaluate("window.result")
    finally:
        await context.close()
    assert (result["state"], result["status"], result["code"]) == ("error", 401, "invalid_stream_key")
