"""In headless Chromium on a phone (390×844): a buyer goes from the watch page to their orders,
sees the order become shipped with its tracking number as the operator ships it from the
console (without reloading), and asks for a return, which the console shows with its reason;
an operator reads where a paid order goes beside its ship form (each read recorded), and an
anchor is not offered the address."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from browser_fixtures import DESKTOP, People, browser, people, server
from commerce_client import BUYER_DETAILS, call, dsn_of, guests, new_key, start_paying, start_sale
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
        status, body = await start_paying(http, server.url, order_id, token)
        assert status == 200, body
        status, body = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", token, {})
        assert status == 200, body

    await watch.locator("#bag-button").click()
    await watch.get_by_role("link", name="Delivery, returns and all your orders").click()
    await watch.wait_for_url(f"**/orders?room={world.room_id}")
    card = watch.locator(f'.order-card[data-order-id="{order_id}"]')
    await expect(card.locator(".status")).to_have_text("paid")
    await expect(card.locator(".order-line")).to_contain_text("Green tea · 250 g × 1")
    await expect(watch.get_by_role("link", name="Back")).to_have_attribute("href", f"/watch/{world.room_id}")
    await watch.evaluate("() => { window.sameDocument = true; }")
    width = await watch.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the orders page is wider than the phone: {width}px"

    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    await expect(console.locator(f'#orders tr[data-order-id="{order_id}"] .item')).to_have_text(
        "Green tea · 250 g × 1"
    )
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


async def test_an_operator_reads_where_a_paid_order_goes_and_the_read_is_recorded(
    server: LiveServer, people: People, database_url: str
) -> None:
    world = await server.seed(stock=20, price_minor=1999)
    async with aiohttp.ClientSession() as http:
        [(_, token)] = await guests(http, server.url, 1)
        bag = f"{server.url}/api/rooms/{world.room_id}/bag/{world.product_id}"
        status, body = await call(http, "PUT", bag, world.tokens["anchor"])
        assert status == 200, body
        status, placed = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            token,
            {"room_id": world.room_id, "sku_id": world.sku_id, "quantity": 1, "idempotency_key": new_key()},
        )
        assert status == 200, placed
        order_id = placed["order"]["order_id"]
        status, body = await start_paying(http, server.url, order_id, token)
        assert status == 200, body
        status, body = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", token, {})
        assert status == 200, body

    anchor = await people.staff(f"/console/{world.room_id}", world.logins["anchor"], DESKTOP)
    anchor_row = anchor.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(anchor_row.locator(".status")).to_have_text("paid")
    await expect(anchor_row.locator(".show-address")).to_have_count(0)

    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    row = console.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row.get_by_role("form", name=f"Ship order #{order_id}")).to_be_visible()
    assert await _address_views(database_url) == []  # nothing is read before someone asks
    await row.get_by_role("button", name=f"Show address of order #{order_id} (recorded)").click()
    to = row.locator(".ship-to")
    await expect(to).to_contain_text(BUYER_DETAILS["name"])
    await expect(to.locator(".phone")).to_have_text("+8613900001234")
    await expect(to.locator(".place")).to_have_text("12 Wenyi Road, Hangzhou, 310012, CN")
    await expect(row.get_by_role("form", name=f"Ship order #{order_id}")).to_be_visible()
    assert await _address_views(database_url) == [(world.user_ids["operator"], "operator", [order_id])]
    assert not people.console_errors, people.console_errors


async def _address_views(database_url: str) -> list[tuple[int, str, list[int]]]:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        rows = await conn.fetch(
            "SELECT actor_id, actor_role, order_ids FROM personal_data_access WHERE action = 'address.view' ORDER BY id"
        )
    finally:
        await conn.close()
    return [(row["actor_id"], row["actor_role"], list(row["order_ids"])) for row in rows]
