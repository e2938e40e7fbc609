"""The shoppable replay in headless Chromium on a 390×844 phone: FFmpeg's live is recorded while
the anchor pins a product card; the replay page plays the recording, puts the card on its
timeline at the moment it was pinned and shows it from that moment only; a guest buys it there at
its list price (quantity, details, paying in test mode); once the room no longer offers it, the
card says so instead; a clip's link starts at its moment; the console lists the recording and
deletes it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from browser_fixtures import (
    DESKTOP,
    PHONE,
    TIMEOUT_MS,
    browser,
    give_buyer_details,
    people,
    server,
    video_plays,
)
from helpers import wait_for
from playwright.async_api import expect
from room_client import RoomClient
from sqlalchemy import select
from test_media_ffmpeg import ffmpeg_publisher
from test_pages_phone_and_languages import fits_the_screen, serious_accessibility_violations
from test_recording import recording_row

from livecommerce.appkeys import MEDIA, SESSION_FACTORY
from livecommerce.db.models import Order

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]
__all__ = ["browser", "people", "server"]

PIN_AFTER = 5.0  # seconds into the live


async def test_the_replay_shows_the_pinned_card_from_its_moment_and_clips_start_there(
    server, people, tmp_path
):
    world = await server.seed()
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    async with ffmpeg_publisher(server, world, tmp_path, seconds=14) as publisher:
        await wait_for(
            lambda: server.app[MEDIA].streams[world.room_id].outputs[0].started_at is not None,
            timeout=60,
            message="the live's first frame",
        )
        output = server.app[MEDIA].streams[world.room_id].outputs[0]
        await asyncio.sleep(max(0.0, PIN_AFTER - (time.time() - output.started_at.timestamp())))
        await anchor.ok("card.pin", {"product_id": world.product_id})
        pinned_at = time.time() - output.started_at.timestamp()
        await wait_for(lambda: not publisher.is_alive(), timeout=90, interval=0.5, message="FFmpeg's 14 s")
    await anchor.close()

    async def complete():
        row = await recording_row(server, world.room_id)
        return row is not None and row.state == "complete"

    await wait_for(complete, timeout=60, interval=0.2, message="the recording")
    row = await recording_row(server, world.room_id)
    session_id = row.stream_session_id

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/api/recordings/{session_id}") as response:
            replay = await response.json()
    (card,) = [m for m in replay["timeline"] if m["kind"] == "card"]
    assert card["at"] == pytest.approx(pinned_at, abs=1.0)
    assert card["card"]["product_id"] == world.product_id
    assert "sale" not in card["card"]["skus"][0]  # list price only: sale prices ended with the live

    page = await people.open(f"/replay/{session_id}", PHONE)
    await video_plays(page)
    timeline = page.locator("#timeline .moment[data-kind=card]")
    await expect(timeline).to_have_count(1)
    card_section = page.locator("#card")
    await page.evaluate(f"() => {{ document.querySelector('#video').currentTime = {card['at'] - 2:.2f}; }}")
    await expect(card_section).to_be_hidden()
    await page.evaluate(f"() => {{ document.querySelector('#video').currentTime = {card['at'] + 1:.2f}; }}")
    await expect(card_section).to_be_visible()
    await expect(page.locator("#card-name")).to_have_text("Green tea")

    # a guest buys the card's product right there, at its list price, and pays in test mode
    await expect(page.locator("#card-price")).to_have_text("$19.99")
    await page.get_by_label("Quantity").fill("2")
    await page.get_by_role("button", name="Buy: Green tea").click()
    await expect(page.locator("#buy-result")).to_contain_text("Reserved for you")
    await expect(page.locator("#pay-summary")).to_contain_text("2 × $19.99 = $39.98")
    await fits_the_screen(page)
    assert await serious_accessibility_violations(page) == []  # the card's offer and the checkout form
    await give_buyer_details(page)
    await page.locator("#pay-button").click()
    await expect(page.locator("#pay-result")).to_contain_text("Paid (test mode)")
    async with server.app[SESSION_FACTORY]() as session:
        (order,) = await session.scalars(select(Order).where(Order.room_id == world.room_id))
    assert (order.status, order.sku_id, order.quantity) == ("paid", world.sku_id, 2)
    assert (order.unit_price_minor, order.amount_minor, order.sale_id) == (1999, 3998, None)
    assert order.shipping["name"] == "Li Lei"

    # taken out of the room's bag, the product is no longer bought from the replay
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    await anchor.ok("card.unpin", {})
    await anchor.ok("bag.remove", {"product_id": world.product_id})
    await anchor.close()

    # a clip marked by the anchor has its own link, which starts the replay at its moment
    headers = {"Authorization": f"Bearer {world.tokens['anchor']}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        body = {"offset_seconds": 9.0, "title": "close-up"}
        async with http.post(f"{server.url}/api/recordings/{session_id}/clips", json=body) as response:
            clip = await response.json()
    clip_page = await people.open(clip["url"])
    await clip_page.wait_for_function(
        "() => document.querySelector('#video').currentTime >= 9", timeout=TIMEOUT_MS
    )
    await expect(clip_page.locator("#clips li")).to_have_text(["0:09 close-up"])
    await expect(clip_page.locator("#card")).to_be_visible()  # the card pinned at ~5 s is on screen
    await expect(clip_page.locator("#card-not-offered")).to_have_text(
        "This product is no longer offered in this live's bag."
    )
    await expect(clip_page.locator("#card-offer")).to_be_hidden()

    # the console lists the recording with its duration and size, opens its replay, deletes it
    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    listed = console.locator(f"#recordings tbody tr[data-session-id='{session_id}']")
    await expect(listed).to_have_attribute("data-state", "complete")
    minutes, seconds = divmod(round(row.duration_seconds), 60)
    await expect(listed.locator("td").nth(1)).to_have_text(f"{minutes}:{seconds:02d}")
    await expect(listed.locator("td").nth(2)).to_have_text(f"{row.size_bytes / 1_000_000:.1f} MB")
    assert await listed.locator("a").get_attribute("href") == f"/replay/{session_id}"
    console.once("dialog", lambda dialog: dialog.accept())
    await listed.get_by_role("button").click()
    await expect(listed).to_have_count(0)
    assert await recording_row(server, world.room_id) is None
    assert not people.console_errors, people.console_errors
