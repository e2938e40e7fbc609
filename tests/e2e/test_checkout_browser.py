"""End to end in headless Chromium on a 390×844 phone: the anchor puts a product in the live's
bag from the studio; a viewer opens the bag over the video, picks a variant and a quantity, gives
their details, pays in test mode, and finds the details filled in on their next order; the
pinned card and the bag follow the SKU's free stock as others buy and the shop restocks."""

from __future__ import annotations

import aiohttp
import pytest
from browser_fixtures import BUYER, PHONE, People, browser, give_buyer_details, people, server
from commerce_client import call, guests, new_key
from helpers import LiveServer
from playwright.async_api import expect
from room_client import RoomClient
from sqlalchemy import select
from test_pages_phone_and_languages import fits_the_screen, serious_accessibility_violations

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import Order, Sku

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]


async def paid_orders(server: LiveServer, merchant_id: int) -> list[Order]:
    async with server.app[SESSION_FACTORY]() as session:
        orders = await session.scalars(
            select(Order).where(Order.merchant_id == merchant_id, Order.status == "paid").order_by(Order.id)
        )
        return list(orders)


async def test_a_viewer_buys_a_variant_from_the_bag_with_details_that_fill_in_the_next_order(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=20, price_minor=1200)
    async with server.app[SESSION_FACTORY].begin() as session:
        large = Sku(
            product_id=world.product_id,
            merchant_id=world.merchant_id,
            code="TEA-L",
            name="1 kg",
            price_minor=3900,
            currency="USD",
            on_hand=5,
        )
        session.add(large)
        await session.flush()
        large_id = large.id

    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"], PHONE)
    watch = await people.open(f"/watch/{world.room_id}", PHONE)
    await watch.locator("#bag-button").click()
    await expect(watch.locator("#bag-empty")).to_be_visible()

    await studio.get_by_role("button", name="Products", exact=True).click()
    await studio.get_by_role("button", name="Add to the live: Green tea").click()
    product = watch.locator("#bag-products li", has_text="Green tea")
    await expect(product).to_contain_text("from $12.00")
    await expect(product).to_contain_text("25 left")
    sheet_top = await watch.evaluate("() => document.querySelector('#bag').getBoundingClientRect().top")
    assert sheet_top >= PHONE["height"] * 0.35, "the bag covers the whole video"

    await watch.get_by_role("button", name="Choose: Green tea").click()
    await watch.get_by_label("1 kg").check()
    await expect(watch.locator("#product-price")).to_have_text("$39.00")
    await expect(watch.locator("#product-stock")).to_have_text("5 left")
    await watch.get_by_label("Quantity").fill("2")
    await watch.locator("#product-buy").click()
    await expect(watch.locator("#product-result")).to_contain_text("Reserved for you")
    await expect(watch.locator("#pay-summary")).to_contain_text("2 × $39.00 = $78.00")
    await fits_the_screen(watch)
    assert await serious_accessibility_violations(watch) == []  # the product and the checkout form open

    # a bad phone number is refused where it was typed, and nothing is paid
    await give_buyer_details(watch, {**BUYER, "phone": "call me"})
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#details-result")).to_have_text("Enter a phone number (6 to 15 digits).")
    await expect(watch.locator("#checkout-form [name=phone]")).to_have_attribute("aria-invalid", "true")
    await give_buyer_details(watch)
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_contain_text("Paid (test mode)")
    [first] = await paid_orders(server, world.merchant_id)
    assert (first.sku_id, first.quantity, first.unit_price_minor, first.sale_id) == (large_id, 2, 3900, None)
    assert first.shipping["name"] == "Li Lei" and first.shipping["phone"] == "+8613800138000"
    assert first.language == "en", "mail about the order comes in the language the page showed"

    # the next visit: the details come back from the server, filled in
    await watch.reload()
    await watch.locator("#bag-button").click()
    await watch.get_by_role("button", name="Choose: Green tea").click()
    await watch.get_by_label("250 g").check()
    await watch.locator("#product-buy").click()
    await expect(watch.locator("#product-result")).to_contain_text("Reserved for you")
    form = watch.locator("#checkout-form")
    await expect(form.locator("[name=name]")).to_have_value("Li Lei")
    await expect(form.locator("[name=line1]")).to_have_value("88 Jianguo Road")
    await expect(form.locator("[name=country]")).to_have_value("CN")
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_contain_text("Paid (test mode)")
    orders = await paid_orders(server, world.merchant_id)
    assert (orders[1].sku_id, orders[1].quantity, orders[1].unit_price_minor) == (world.sku_id, 1, 1200)
    assert orders[1].shipping == first.shipping
    await expect(watch.locator("#bag-products li", has_text="Green tea")).to_contain_text("22 left")


async def test_the_pinned_card_and_the_bag_follow_free_stock_and_buy_turns_off_at_zero(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=3, price_minor=1200)
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    try:
        await anchor.ok("card.pin", {"product_id": world.product_id})
    finally:
        await anchor.close()
    watch = await people.open(f"/watch/{world.room_id}", PHONE)
    await expect(watch.locator("#card-stock")).to_have_text("3 in stock")
    await expect(watch.locator("#buy")).to_be_enabled()

    async with aiohttp.ClientSession() as http:
        buyers = await guests(http, server.url, 2)
        for (_, token), quantity in zip(buyers, (1, 2), strict=True):
            body = {
                "room_id": world.room_id,
                "sku_id": world.sku_id,
                "quantity": quantity,
                "idempotency_key": new_key(),
            }
            status, answer = await call(http, "POST", f"{server.url}/api/orders", token, body)
            assert status == 200, answer
        await expect(watch.locator("#card-stock")).to_have_text("Out of stock")
        await expect(watch.locator("#buy")).to_be_disabled()
        await watch.locator("#bag-button").click()
        await expect(watch.locator("#bag-products li", has_text="Green tea")).to_contain_text("Sold out")

        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/skus/{world.sku_id}/stock",
            world.tokens["operator"],
            {"delta": 4},
        )
        assert status == 200, answer
    await expect(watch.locator("#bag-products li", has_text="Green tea")).to_contain_text("4 left")
    await expect(watch.locator("#card-stock")).to_have_text("4 in stock")
    await expect(watch.locator("#buy")).to_be_enabled()


async def test_a_guest_who_signs_in_to_follow_brings_their_paid_order_into_the_account(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=5, price_minor=1200)
    login = f"ann-{world.room_id}@example.com"
    async with aiohttp.ClientSession() as http:
        status, account = await call(
            http, "POST", f"{server.url}/api/auth/signup", None, {"login": login, "password": "password123"}
        )
        assert status == 200, account
        status, _ = await call(
            http,
            "PUT",
            f"{server.url}/api/rooms/{world.room_id}/bag/{world.product_id}",
            world.tokens["anchor"],
        )
        assert status == 200
    watch = await people.open(f"/watch/{world.room_id}", PHONE)
    await watch.locator("#bag-button").click()
    await watch.get_by_role("button", name="Choose: Green tea").click()
    await watch.locator("#product-buy").click()
    await expect(watch.locator("#product-result")).to_contain_text("Reserved for you")
    await give_buyer_details(watch)
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_contain_text("Paid (test mode)")
    [bought] = await paid_orders(server, world.merchant_id)
    guest_id = bought.user_id

    await watch.locator("#bag [data-close]").click()
    await watch.locator("#follow").click()
    form = watch.locator("#follow-signin-form")
    await form.locator("[name=login]").fill(login)
    await form.locator("[name=password]").fill("password123")
    await form.locator("button[type=submit]").click()
    await expect(watch.locator("#follow")).to_have_attribute("aria-pressed", "true")
    [bought] = await paid_orders(server, world.merchant_id)
    assert bought.user_id == account["user"]["id"] != guest_id
    await expect(watch.locator("#order-list li")).to_have_count(1)
