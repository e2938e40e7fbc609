"""In headless Chromium: the anchor keeps a flash sale open after the live from the studio's sale
form, and changes it back on the running sale."""

from __future__ import annotations

import aiohttp
import pytest
from browser_fixtures import People, browser, people, server
from commerce_client import call
from helpers import LiveServer, wait_for
from playwright.async_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]


async def test_the_anchor_keeps_a_sale_open_after_the_live_and_changes_it_back(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=20)
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    await studio.get_by_role("button", name="Products").click()
    await studio.get_by_role("button", name="Flash sale: Green tea").click()
    form = studio.get_by_role("form", name="Flash sale of Green tea")
    await form.get_by_label("Sale price").fill("9.99")
    await form.get_by_label("Units for the sale").fill("5")
    await form.get_by_label("Keep selling after the live ends").check()
    await form.get_by_role("button", name="Start sale").click()

    kept = studio.get_by_label("Open after live")
    await expect(kept).to_be_checked()

    async def sale_keeps_open() -> bool | None:
        async with aiohttp.ClientSession() as http:
            _, body = await call(http, "GET", f"{server.url}/api/rooms/{world.room_id}/sales", None)
        return body["sales"][0]["keep_open_after_live"] if body["sales"] else None

    assert await sale_keeps_open() is True
    await kept.uncheck()
    await expect(studio.locator("#product-result")).to_have_text("The sale ends when the live ends.")

    async def sale_ends_with_the_live() -> bool:
        return await sale_keeps_open() is False

    await wait_for(sale_ends_with_the_live, message="the sale no longer kept open")
    await expect(kept).not_to_be_checked()
