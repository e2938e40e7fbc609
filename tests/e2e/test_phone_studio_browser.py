"""End to end in headless Chromium on a phone: a running draw's entrants appear live in the
studio and on the watch page, and the stream turns with the anchor's phone."""

from __future__ import annotations

import pytest
from browser_fixtures import PHONE, People, browser, people, server, video_plays
from helpers import LiveServer
from playwright.async_api import Page, expect
from room_client import RoomClient
from sqlalchemy import func, select
from test_pages_phone_and_languages import page_checks

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import StreamSession

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]

LANDSCAPE_PHONE = {"width": PHONE["height"], "height": PHONE["width"]}


async def test_the_studio_and_the_watch_page_count_entrants_while_the_draw_runs(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    watch = await people.open(f"/watch/{world.room_id}")
    await studio.get_by_role("button", name="Draw").click()
    form = studio.locator("#draw-form")
    await form.get_by_label("Prize (words)").fill("Tea set")
    await form.get_by_role("textbox", name="Keyword").fill("tea")
    await form.get_by_label("Minimum watch time (minutes, optional)").fill("0")
    await form.get_by_role("button", name="Start draw").click()
    await expect(studio.locator("#draw-entrants")).to_have_text("0 entered")
    await expect(watch.locator("#draw-entrants")).to_have_text("0 entered")

    guests = [await server.guest(name) for name in ("Ann", "Bo", "Cy")]
    clients = [await RoomClient.connect(server.room_ws(world.room_id, token)) for _, token in guests]
    try:
        for client in clients:
            await client.event("snapshot")
            await client.send("draw.enter", {})
        await expect(studio.locator("#draw-entrants")).to_have_text("3 entered · latest: Cy, Bo, Ann")
        await expect(watch.locator("#draw-entrants")).to_have_text("3 entered")
        await page_checks(studio)
        await page_checks(watch)
    finally:
        for client in clients:
            await client.close()


async def shape(watch: Page) -> dict[str, object]:
    return await watch.evaluate(
        "() => { const v = document.querySelector('#video');"
        " return {width: v.videoWidth, height: v.videoHeight, fit: v.dataset.fit}; }"
    )


async def test_the_stream_turns_with_the_phone_on_the_same_session(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    await studio.get_by_role("button", name="Go live").click()
    await expect(studio.locator("#live-badge")).to_have_text("LIVE")
    watch = await people.open(f"/watch/{world.room_id}")
    await video_plays(watch)
    await watch.wait_for_function(
        "() => { const v = document.querySelector('#video'); return v.videoHeight > v.videoWidth; }"
    )
    assert (await shape(watch))["fit"] == "cover", await shape(watch)  # portrait fills the phone

    await studio.set_viewport_size(LANDSCAPE_PHONE)  # the anchor turns the phone sideways
    await watch.wait_for_function(
        "() => { const v = document.querySelector('#video'); return v.videoWidth > v.videoHeight; }"
    )
    await expect(watch.locator("#video")).to_have_attribute("data-fit", "contain")  # letterboxed

    await studio.set_viewport_size(PHONE)  # and upright again
    await watch.wait_for_function(
        "() => { const v = document.querySelector('#video'); return v.videoHeight > v.videoWidth; }"
    )
    await expect(watch.locator("#video")).to_have_attribute("data-fit", "cover")
    async with server.app[SESSION_FACTORY]() as session:
        sessions = await session.scalar(
            select(func.count()).select_from(StreamSession).where(StreamSession.room_id == world.room_id)
        )
    assert sessions == 1  # one WHIP session throughout: no new publish, no renegotiation
