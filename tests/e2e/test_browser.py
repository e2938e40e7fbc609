"""End to end in headless Chromium: the studio, watch and console pages against the real server."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from browser_fixtures import (
    DESKTOP,
    People,
    browser,
    give_buyer_details,
    people,
    server,
    video_plays,
)
from helpers import LiveServer, World, wait_for
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from livecommerce.appkeys import HUB, SESSION_FACTORY
from livecommerce.db.models import Draw, DrawWinner, Order, OrderKind, Sku, StreamSession
from livecommerce.realtime.viewer_samples import record_viewers

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]


async def go_live(people: People, world: World) -> Page:
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    await studio.get_by_role("button", name="Go live").click()
    await expect(studio.locator("#live-badge")).to_have_text("LIVE")
    return studio


async def open_sale(console: Page, product: str, *, price: str, units: int) -> None:
    """The operator pins the product's card and opens a flash sale of it from the console."""
    await console.get_by_role("button", name=f"Pin {product}").click()
    # the row's buttons are drawn again once the card is pinned: wait, so no click lands in between
    await expect(console.get_by_role("button", name=f"Unpin {product}")).to_be_visible()
    await console.get_by_role("button", name=re.compile("^Flash sale: ")).first.click()
    sale = console.get_by_role("form", name=f"Flash sale of {product}")
    await sale.get_by_label("Sale price").fill(price)
    await sale.get_by_label("Units for the sale").fill(str(units))
    await sale.get_by_label("Limit per viewer").fill("2")
    await sale.get_by_role("button", name="Start sale").click()


async def restock(console: Page, world: World, units: int) -> None:
    row = console.locator(f"#inventory tr[data-sku-id='{world.sku_id}']")
    await row.get_by_role("spinbutton").fill(str(units))
    await row.get_by_role("button", name="Add").click()


async def test_anchor_goes_live_and_the_viewer_sees_the_video(server: LiveServer, people: People) -> None:
    world = await server.seed()
    await go_live(people, world)
    watch = await people.open(f"/watch/{world.room_id}")
    await video_plays(watch)
    await expect(watch.locator("#live-badge")).to_be_visible()
    await expect(watch.locator("#stage-status")).to_have_text("")


async def test_chat_reaches_studio_and_console_and_a_delete_removes_it_everywhere(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    console = await people.staff(f"/console/{world.room_id}", world.logins["moderator"], DESKTOP)
    watch = await people.open(f"/watch/{world.room_id}")
    await watch.get_by_label("Message").fill("Is the <b>tea</b> organic?")
    await watch.get_by_label("Message").press("Enter")

    pages = (watch, studio, console)
    for page in pages:
        line = page.locator("#chat-list li", has_text="Is the <b>tea</b> organic?")
        await expect(line).to_have_count(1)
        # user text is shown as text, never parsed as markup
        await expect(line.locator("b")).to_have_count(0)

    message = console.locator("#chat-list li", has_text="organic")
    await message.get_by_role("button", name=re.compile("^Delete the message of Guest")).click()
    for page in pages:
        await expect(page.locator("#chat-list li", has_text="organic")).to_have_count(0)


async def test_sale_buy_and_test_payment_move_stock_on_every_page_and_restock_reaches_the_viewer(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=50, price_minor=1999)
    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    watch = await people.open(f"/watch/{world.room_id}")
    await expect(console.locator("#inventory tbody tr")).to_have_count(1)

    await open_sale(console, "Green tea", price="9.99", units=5)
    await expect(watch.locator("#card-name")).to_have_text("Green tea")
    await expect(watch.locator("#card-price")).to_have_text("$9.99")
    await expect(watch.locator("#card-list-price")).to_have_text("$19.99")
    await expect(watch.locator("#card-stock")).to_have_text("5 left")
    await expect(studio.locator("#sale-left")).to_have_text("5 left")

    await watch.get_by_role("button", name="Buy").click()
    await expect(watch.locator("#buy-result")).to_contain_text("Reserved for you")
    await expect(watch.locator("#pay-test-note")).to_be_visible()
    await give_buyer_details(watch)
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_contain_text("Paid (test mode)")

    await expect(watch.locator("#card-stock")).to_have_text("4 left")
    await expect(studio.locator("#sale-left")).to_have_text("4 left")
    await expect(console.locator(".sale-available")).to_have_text("4 of 5 left")
    await expect(console.locator("#orders tbody tr .status")).to_have_text("paid")
    await expect(studio.locator("#ticker-units")).to_have_text("1")

    await restock(console, world, 10)
    await expect(watch.locator("#card-stock")).to_have_text("14 left")
    await expect(console.locator(".sale-available")).to_have_text("14 of 15 left")


async def add_product(server: LiveServer, world: World, name: str) -> None:
    token = world.tokens["operator"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.post(f"{server.url}/api/products", json={"name": name}) as response:
            assert response.status == 201, await response.text()
            product_id = (await response.json())["product_id"]
        sku = {"code": "BASKET", "name": "Small", "price_minor": 2400, "on_hand": 8}
        async with http.post(f"{server.url}/api/products/{product_id}/skus", json=sku) as response:
            assert response.status == 201, await response.text()


async def test_viewer_back_from_a_network_drop_sees_current_stock_and_card_without_reloading(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=50)
    await add_product(server, world, "Bamboo basket")
    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    watch = await people.open(f"/watch/{world.room_id}")
    await open_sale(console, "Green tea", price="9.99", units=5)
    await expect(watch.locator("#card-stock")).to_have_text("5 left")
    await watch.evaluate("() => { window.sameDocument = true; }")
    viewer_id = await watch.evaluate("() => JSON.parse(localStorage.getItem('livecommerce.viewer')).user.id")
    hub = server.app[HUB]

    await watch.context.set_offline(True)
    await wait_for(
        lambda: not hub.local_connections(world.room_id, viewer_id),
        timeout=30,
        message="the viewer's socket to close",
    )
    await restock(console, world, 10)
    await expect(console.locator(".sale-available")).to_have_text("15 of 15 left")
    await console.get_by_role("button", name="Pin Bamboo basket").click()
    await expect(console.get_by_role("button", name="Pin Green tea")).to_be_visible()
    await expect(watch.locator("#card-name")).to_have_text("Green tea")  # nothing reached it meanwhile

    await watch.context.set_offline(False)
    await expect(watch.locator("#card-name")).to_have_text("Bamboo basket")
    await expect(watch.locator("#card-stock")).to_have_text("8 in stock")
    # the sale's stock came back with the missed events: pinning the tea again shows it at once
    await console.get_by_role("button", name="Pin Green tea").click()
    await expect(watch.locator("#card-stock")).to_have_text("15 left")
    assert await watch.evaluate("() => window.sameDocument === true"), "the page was reloaded"


async def test_draw_winner_claims_the_sku_prize_with_an_address_and_a_late_claim_is_refused(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=5)
    watch = await people.open(f"/watch/{world.room_id}")
    await expect(watch.locator("#me-name")).not_to_have_text("…")
    anchor = {"Authorization": f"Bearer {world.tokens['anchor']}"}

    async def draw_won_by_the_viewer() -> int:
        async with aiohttp.ClientSession(headers=anchor) as http:
            spec = {
                "prize_sku_id": world.sku_id,
                "rule": "keyword",
                "keyword": "tea",
                "duration_seconds": 600,
            }
            async with http.post(f"{server.url}/api/rooms/{world.room_id}/draws", json=spec) as response:
                draw_id = (await response.json())["id"]
            await watch.get_by_role("button", name="Enter the draw").click()
            await expect(watch.locator("#draw-result")).to_have_text("You are in the draw. Good luck!")
            async with http.post(f"{server.url}/api/draws/{draw_id}/close") as response:
                assert response.status == 200
        return draw_id

    async def fill_address(form) -> None:
        await form.get_by_label("Full name").fill("Ann Lee")
        await form.get_by_label("Phone").fill("+44 20 7946 0000")
        await form.get_by_label("Address line 1").fill("1 Main St")
        await form.get_by_label("City").fill("Springfield")
        await form.get_by_label("Postcode").fill("12345")
        await form.get_by_label("Country").fill("gb")
        await form.get_by_role("button", name="Send my address").click()

    first = await draw_won_by_the_viewer()
    claim = watch.get_by_role("form", name="Claim your prize")
    await expect(claim).to_be_visible()
    await fill_address(claim)
    await expect(watch.locator("#claim-result")).to_have_text(re.compile(r"^Prize claimed \(order \d+\)"))
    await expect(claim).to_be_hidden()
    async with server.app[SESSION_FACTORY]() as session:
        order = await session.scalar(select(Order).where(Order.kind == OrderKind.PRIZE))
        assert order.shipping["country"] == "GB" and order.shipping["phone"] == "+44 20 7946 0000"
        winner = await session.scalar(select(DrawWinner).where(DrawWinner.draw_id == first))
        assert winner.claim_order_id == order.id

    second = await draw_won_by_the_viewer()
    await expect(claim).to_be_visible()
    async with server.app[SESSION_FACTORY].begin() as session:
        await session.execute(
            update(Draw)
            .where(Draw.id == second)
            .values(claim_deadline=datetime.now(UTC) - timedelta(seconds=1))
        )
    await fill_address(claim)
    await expect(watch.locator("#claim-result")).to_have_text("The time to claim this prize has passed.")
    await expect(claim).to_be_hidden()


async def test_console_dashboard_follows_the_chosen_stream_with_viewers_and_csv(
    server: LiveServer, people: People
) -> None:
    world = await server.seed()
    now = datetime.now(UTC)
    async with server.app[SESSION_FACTORY].begin() as session:
        earlier = StreamSession(
            room_id=world.room_id,
            node_id="n1",
            started_at=now - timedelta(hours=3),
            ended_at=now - timedelta(hours=2),
        )
        current = StreamSession(room_id=world.room_id, node_id="n1", started_at=now - timedelta(minutes=10))
        session.add_all([earlier, current])
    await record_viewers(
        server.app[SESSION_FACTORY], {world.room_id: 50}, now - timedelta(hours=2, minutes=30)
    )
    await record_viewers(server.app[SESSION_FACTORY], {world.room_id: 8}, now - timedelta(minutes=2))

    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    picker = console.get_by_label("Stream")
    await expect(picker).to_have_value(str(current.id))
    await expect(picker.locator("option")).to_have_count(3)
    await expect(console.locator("#peak-viewers")).to_have_text("8")

    await picker.select_option(str(earlier.id))
    await expect(console.locator("#peak-viewers")).to_have_text("50")
    async with console.expect_download() as download_info:
        await console.get_by_role("link", name="Export as CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"room-{world.room_id}-stream-{earlier.id}-sales.csv"
    csv_text = await asyncio.to_thread(Path(await download.path()).read_text)
    header, row = csv_text.strip().splitlines()
    assert header == "bucket_start,product_id,orders,paid_orders,units,gmv_minor,viewers"
    assert row.endswith(",,0,0,0,0,50")


async def test_operator_sets_a_sku_regular_price_from_the_inventory_table(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(price_minor=1999)
    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], DESKTOP)
    row = console.locator(f"#inventory tr[data-sku-id='{world.sku_id}']")
    await expect(row).to_contain_text("$19.99")
    form = row.get_by_role("form", name=re.compile("^Regular price of"))
    await form.get_by_role("textbox").fill("12.5")
    await form.get_by_role("button", name="Set").click()
    await expect(console.locator("#inventory-result")).to_have_text(re.compile(r"now costs \$12\.50\.$"))
    await expect(row).to_contain_text("$12.50")
    async with server.app[SESSION_FACTORY]() as session:
        assert (await session.get(Sku, world.sku_id)).price_minor == 1250


async def test_a_closed_draw_tells_each_viewer_whether_they_won(server: LiveServer, people: People) -> None:
    world = await server.seed()
    viewers = [await people.open(f"/watch/{world.room_id}") for _ in range(2)]
    for watch in viewers:
        await expect(watch.locator("#me-name")).not_to_have_text("…")
    anchor = {"Authorization": f"Bearer {world.tokens['anchor']}"}
    spec = {"prize_text": "A tin of tea", "rule": "keyword", "keyword": "tea", "duration_seconds": 600}
    async with aiohttp.ClientSession(headers=anchor) as http:
        async with http.post(f"{server.url}/api/rooms/{world.room_id}/draws", json=spec) as response:
            draw_id = (await response.json())["id"]
        for watch in viewers:
            await watch.get_by_role("button", name="Enter the draw").click()
            await expect(watch.locator("#draw-result")).to_have_text("You are in the draw. Good luck!")
        async with http.post(f"{server.url}/api/draws/{draw_id}/close") as response:
            assert response.status == 200

    outcomes = []
    for watch in viewers:
        result = watch.locator("#draw-result")
        await expect(result).to_have_text(re.compile("^(You won|Not this time)"))
        outcomes.append(await result.text_content())
    assert sorted(text.split(":")[0] for text in outcomes) == ["Not this time", "You won"]
