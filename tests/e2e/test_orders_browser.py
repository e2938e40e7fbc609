"""In headless Chromium on a phone (390×844): a buyer goes from the watch page to their orders,
sees the order become shipped with its tracking number as the operator ships it from the
console (without reloading), and asks for a return, which the console shows with its reason."""

from __future__ import annotations

import aiohttp
import pytest
from browser_fixtures import DESKTOP, People, browser, people, server
from commerce_client import call, new_key, start_sale
from helpers import LiveServer
from playwright.async_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]


async def test_a_buyer_sees_their_order_ship_without_reloading_and_asks_for_a_return(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=20, price_minor=1999)
    watch = await people.open(f"/watch/{world.room_id}")
    await expect(watch.locator("#me-name")).not_to_have_text("…")
    token = await watch.evaluate("() => JSON.parse(localStorage.getItem('livecommerce.viewer')).token")
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=5,
            price=1250,
        )
        status, placed = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            token,
            {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": new_key()},
        )
        assert status == 200, placed
        order_id = placed["order"]["order_id"]
        for step in ("pay", "test-confirm"):
            status, body = await call(http, "POST", f"{server.url}/api/orders/{order_id}/{step}", token, {})
            assert status == 200, body

    await watch.locator("#bag-button").click()
    await watch.get_by_role("link", name="Delivery, returns and all your orders").click()
    await watch.wait_for_url(f"**/orders?room={world.room_id}")
    card = watch.locator(f'.order-card[data-order-id="{order_id}"]')
    await expect(card.locator(".status")).to_have_text("paid")
    await expect(watch.get_by_role("link", name="Back")).to_have_attribute("href", f"/watch/{world.room_id}")
    await watch.evaluate("() => { window.sameDocument = true; }")
    width = await watch.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the orders page is wider than the phone: {width}px"

    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    ship = console.get_by_role("form", name=f"Ship order #{order_id}")
    await ship.get_by_label("Carrier").fill("SF Express")
    await ship.get_by_label("Tracking number").fill("SF1402538491")
    await ship.get_by_role("button", name="Ship").click()
    await expect(console.locator(f'#orders tr[data-order-id="{order_id}"] .status')).to_have_text("shipped")

    await expect(card.locator(".status")).to_have_text("shipped")
    await expect(card.locator(".tracking")).to_have_text("SF Express · SF1402538491")
    assert await watch.evaluate("() => window.sameDocument === true"), "the page reloaded"

    await card.get_by_role("link").click()
    await expect(watch.locator("#detail-status")).to_have_text("shipped")
    await expect(watch.locator("#parcel-tracking")).to_have_text("SF1402538491")
    await watch.get_by_label("What is wrong? (the shop reads this)").fill("The tin arrived dented")
    await watch.get_by_role("button", name="Ask for a return or refund").click()
    await expect(watch.locator("#detail-status")).to_have_text("return requested")
    await expect(watch.locator("#after-sale")).to_contain_text("The tin arrived dented")
    await expect(watch.locator("#history li")).to_have_count(3)  # paid, shipped, return requested

    await console.locator("#orders-filter").select_option("return_requested")
    row = console.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row.locator(".status")).to_have_text("return requested")
    await expect(row.locator(".return-reason")).to_have_text("The buyer says: “The tin arrived dented”")
    await expect(console.locator("#orders tbody tr")).to_have_count(1)
    assert not people.console_errors, people.console_errors
