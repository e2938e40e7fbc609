"""End to end in headless Chromium: likes, role badges, unique guest names and following."""

from __future__ import annotations

import re

import pytest
from browser_fixtures import DESKTOP, PASSWORD, People, browser, people, server
from helpers import LiveServer
from playwright.async_api import expect
from test_pages_phone_and_languages import page_checks

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]


async def test_viewer_likes_and_the_anchor_sees_the_total_and_staff_wear_badges(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    watch = await people.open(f"/watch/{world.room_id}")
    await expect(watch.locator("#me-name")).not_to_have_text("…")
    like = watch.get_by_role("button", name="Like")
    for _ in range(3):
        await like.click()
    await expect(watch.locator("#hearts .heart").first).to_be_attached()
    await expect(watch.locator("#like-count")).to_have_text("3")
    await expect(studio.locator("#ticker-likes")).to_have_text("3")

    await studio.get_by_label("Message").fill("Welcome everyone")
    await studio.get_by_label("Message").press("Enter")
    line = watch.locator("#chat-list li", has_text="Welcome everyone")
    await expect(line.locator(".role")).to_have_text("Anchor")
    await watch.get_by_label("Message").fill("Hello from a guest")
    await watch.get_by_label("Message").press("Enter")
    console = await people.staff(f"/console/{world.room_id}", world.logins["moderator"], DESKTOP)
    from_guest = console.locator("#chat-list li", has_text="Hello from a guest")
    await expect(from_guest.get_by_role("button", name=re.compile("^Mute 10 min"))).to_be_visible()
    from_anchor = console.locator("#chat-list li", has_text="Welcome everyone")
    await expect(from_anchor.locator(".role")).to_have_text("Anchor")
    # staff cannot be muted or banned, so the console does not offer it
    await expect(from_anchor.get_by_role("button", name=re.compile("^(Mute|Ban)"))).to_have_count(0)

    await watch.get_by_role("button", name="Follow").click()
    await expect(watch.get_by_role("heading", name="Sign in to follow this room")).to_be_visible()
    await page_checks(watch)
    form = watch.locator("#follow-signin-form")
    await form.get_by_label("Login").fill(world.logins["operator"])
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_role("button", name="Sign in and follow").click()
    await expect(watch.get_by_role("button", name="Following")).to_have_attribute("aria-pressed", "true")
    await expect(studio.locator("#ticker-followers")).to_have_text("1")
    await page_checks(watch)
    await page_checks(studio)


async def test_a_second_guest_taking_a_name_in_use_chats_under_a_numbered_one(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    pages = [await people.open(f"/watch/{world.room_id}") for _ in range(2)]
    for page, shown in zip(pages, ("Ann", "Ann 2"), strict=True):
        await page.get_by_role("button", name="change name").click()
        await page.get_by_label("Your name").fill("Ann")
        await page.get_by_role("button", name="Save").click()
        await expect(page.locator("#me-name")).to_have_text(shown)
