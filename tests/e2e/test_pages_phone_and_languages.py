"""The pages as people use them: a phone in Chinese and a laptop in English, from going live to a
paid order; every page's layout (full-screen video, nothing wider than the screen), an axe-core
accessibility scan, and the screenshots shown in the README."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser_fixtures import (
    LAPTOP,
    PHONE,
    People,
    browser,
    give_buyer_details,
    people,
    png_size,
    server,
    video_plays,
)
from helpers import ROOT, LiveServer
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# The README's screenshots are refreshed with UPDATE_SCREENSHOTS=1; an ordinary run writes its
# pictures beside the other test artifacts and leaves the checkout as it was.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else ROOT / "test-artifacts" / "screenshots"
)
SCREENSHOT_MAX_BYTES = 200_000


async def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not await page.evaluate("() => Boolean(window.axe)"):
        # evaluated through the DevTools protocol: the pages' Content-Security-Policy allows no inline script
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    violations = await page.evaluate(
        """async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)"""
    )
    return violations


async def fits_the_screen(page: Page) -> None:
    """Nothing on the page is wider than the window."""
    widths = await page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} px wide in {widths[1]} px"


async def video_fills_the_viewport(page: Page, selector: str) -> None:
    box = await page.evaluate(
        f"""() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();
            return [r.left, r.top, r.width, r.height, innerWidth, innerHeight]; }}"""
    )
    left, top, width, height, screen_width, screen_height = box
    assert (left, top, width, height) == (0, 0, screen_width, screen_height), box


async def page_checks(page: Page) -> None:
    await fits_the_screen(page)
    assert await serious_accessibility_violations(page) == []


async def screenshot(page: Page, name: str, size: dict[str, int]) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, animations="disabled", caret="hide")
    assert png_size(path) == (size["width"], size["height"])
    assert path.stat().st_size < SCREENSHOT_MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"


async def choose_language(page: Page, code: str) -> None:
    await page.locator(".lang-switch:visible").first.select_option(code)
    await expect(page.locator("html")).to_have_attribute("lang", code)


async def test_a_phone_in_chinese_goes_live_and_a_viewer_chats_buys_and_pays(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=120, price_minor=1890)
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"], PHONE, "zh-CN")
    await expect(studio.locator("html")).to_have_attribute("lang", "zh-CN")
    await studio.get_by_role("button", name="开始直播").click()
    await expect(studio.locator("#live-badge")).to_have_text("直播中")

    # products open as a sheet over the lower part: the preview stays on screen
    await studio.get_by_role("button", name="商品", exact=True).click()
    await studio.get_by_role("button", name="开秒杀：Green tea").click()
    sale = studio.get_by_role("form", name="Green tea 限时秒杀")
    await expect(sale.locator(".sale-facts")).to_have_text("原价 US$18.90 · 库存 120 件")
    await sale.get_by_label("秒杀价").fill("9.90")
    await sale.get_by_label("秒杀数量").fill("5")
    await sale.get_by_label("每人限购").fill("1")
    await sale.get_by_role("button", name="开始秒杀").click()
    await expect(studio.locator("#sale-left")).to_have_text("仅剩 5 件")
    await video_fills_the_viewport(studio, "#preview")
    sheet_top = await studio.evaluate(
        "() => document.querySelector('#products-sheet').getBoundingClientRect().top"
    )
    assert sheet_top >= PHONE["height"] * 0.35, "the products sheet hides the preview"
    assert await serious_accessibility_violations(studio) == []  # with the sheet and the sale form open
    await studio.get_by_role("button", name="关闭商品").click()

    watch = await people.open(f"/watch/{world.room_id}", PHONE, "zh-CN")
    await video_plays(watch)
    await video_fills_the_viewport(watch, "#video")
    await expect(watch.locator("#live-badge")).to_have_text("直播中")
    await expect(watch.locator("#card-name")).to_have_text("Green tea")
    await expect(watch.locator("#card-stock")).to_have_text("仅剩 5 件")

    await watch.get_by_label("消息").fill("这款茶叶是有机的吗？")
    await watch.get_by_label("消息").press("Enter")
    await expect(studio.locator("#chat-list li", has_text="这款茶叶是有机的吗？")).to_have_count(1)

    await watch.get_by_role("button", name=re.compile("^立即购买")).click()
    await expect(watch.locator("#buy-result")).to_have_text("已为你锁定，付款后完成下单。")
    await expect(watch.locator("#pay-test-note")).to_be_visible()
    await give_buyer_details(watch)
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_have_text("支付成功（测试模式），感谢下单！")
    # no stale "reserved" above "paid", and the per-viewer limit of one is reached
    await expect(watch.locator("#buy-result")).to_be_hidden()
    await expect(watch.locator("#buy")).to_be_disabled()
    await expect(watch.locator("#buy")).to_have_text("已达限购")
    await expect(studio.locator("#ticker-units")).to_have_text("1")
    assert await serious_accessibility_violations(watch) == []  # with the bag open
    await watch.get_by_role("button", name="关闭购物袋").click()

    for page in (studio, watch):
        await page_checks(page)
    await screenshot(studio, "studio-phone-zh", PHONE)
    await screenshot(watch, "watch-phone-zh", PHONE)
    for page in (studio, watch):
        await choose_language(page, "en")
    await expect(watch.locator("#card-stock")).to_have_text("4 left")
    await expect(studio.locator("#live-badge")).to_have_text("LIVE")
    await screenshot(studio, "studio-phone-en", PHONE)
    await screenshot(watch, "watch-phone-en", PHONE)

    # ending asks first; the viewer sees the end, and its page logs no error about it
    await studio.get_by_role("button", name="End stream").click()
    await studio.get_by_role("dialog").get_by_role("button", name="End stream").click()
    await expect(studio.locator("#live-badge")).to_have_text("OFF AIR")
    await expect(watch.locator("#live-badge")).to_have_text("ENDED")
    await expect(watch.locator("#stage-status")).to_have_text("The stream has ended. Thanks for watching!")

    # the choice of language is remembered over the browser's
    await watch.reload()
    await expect(watch.locator("html")).to_have_attribute("lang", "en")
    await expect(watch.locator("#chat-input")).to_have_attribute("placeholder", "Say something…")
    assert people.console_errors == []


async def test_a_laptop_in_english_runs_the_sale_from_the_console_and_the_table_fits(
    server: LiveServer, people: People
) -> None:
    world = await server.seed(stock=50, price_minor=1999)
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"], LAPTOP)
    await studio.get_by_role("button", name="Go live").click()
    await expect(studio.locator("#live-badge")).to_have_text("LIVE")
    console = await people.staff(f"/console/{world.room_id}", world.logins["operator"], LAPTOP)
    await expect(console.locator("#inventory tbody tr")).to_have_count(1)

    await console.get_by_role("button", name="Pin Green tea").click()
    # the row's buttons are drawn again once the card is pinned: wait, so no click lands in between
    await expect(console.get_by_role("button", name="Unpin Green tea")).to_be_visible()
    await console.get_by_role("button", name="Flash sale: TEA").click()
    sale = console.get_by_role("form", name="Flash sale of Green tea")
    await expect(sale.locator(".sale-facts")).to_have_text("List price $19.99 · 50 in stock")
    await sale.get_by_label("Sale price").fill("9.99")
    await sale.get_by_label("Units for the sale").fill("5")
    await sale.get_by_role("button", name="Start sale").click()
    await expect(console.locator(".sale-available")).to_have_text("5 of 5 left")

    watch = await people.open(f"/watch/{world.room_id}", LAPTOP)
    await video_plays(watch)
    await video_fills_the_viewport(watch, "#video")
    await watch.get_by_label("Message").fill("Does it ship to Leeds?")
    await watch.get_by_label("Message").press("Enter")
    line = console.locator("#chat-list li", has_text="Does it ship to Leeds?")
    await expect(line.get_by_role("button", name=re.compile("^Mute 10 min: Guest"))).to_be_visible()
    await watch.get_by_role("button", name="Buy: Green tea").click()
    await give_buyer_details(watch)
    await watch.locator("#pay-button").click()
    await expect(watch.locator("#pay-result")).to_contain_text("Paid (test mode)")
    await expect(console.locator("#orders tbody tr .status")).to_have_text("paid")
    await watch.get_by_role("button", name="Close the shop").click()

    on_stream = console.get_by_role("columnheader", name="On stream")
    right = await on_stream.evaluate("(cell) => cell.getBoundingClientRect().right")
    assert right <= LAPTOP["width"], f"the On stream column ends at {right} px"

    for page in (studio, watch, console):
        await page_checks(page)
    await screenshot(console, "console-laptop-en", LAPTOP)
    await screenshot(watch, "watch-laptop-en", LAPTOP)
    await screenshot(studio, "studio-laptop-en", LAPTOP)
    await choose_language(console, "zh-CN")
    await expect(console.get_by_role("columnheader", name="直播间")).to_be_visible()
    await expect(console.locator("#inventory tbody tr").get_by_role("button", name="补货")).to_be_visible()
    await expect(console.locator(".sale-available")).to_have_text("剩余 4 / 5")
    await page_checks(console)
    await screenshot(console, "console-laptop-zh", LAPTOP)

    index = await people.open("/", PHONE, "zh-CN")
    await expect(index.get_by_role("link", name="观看").first).to_be_visible()
    await page_checks(index)
    assert people.console_errors == []
