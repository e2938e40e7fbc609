"""Headless Chromium (Debian's package) driven by Playwright against the real server.

One browser per test module; every person in a test gets their own browser context (own
storage, own network switch), so a viewer, an anchor and an operator never share a session.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from helpers import LiveServer, start_server
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"  # Debian's package; scripts/test installs it
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
LAPTOP = {"width": 1280, "height": 800}
# generous: two cores shared with other work, and WebRTC start-up on a busy machine
TIMEOUT_MS = 45_000
expect.set_options(timeout=TIMEOUT_MS)
PASSWORD = "password123"  # what `LiveServer.seed()` gives every staff account


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def server(settings) -> AsyncIterator[LiveServer]:
    """The real server, in the module's event loop (the one the browser tests run in)."""
    live = await start_server(settings)
    yield live
    await live.runner.cleanup()


class People:
    """Opens pages as separate people, and fails the test on any uncaught error in a page.

    Each person's browser speaks `locale` (English unless a test says otherwise). Errors the
    pages log to the console about the server's own resources are kept in `console_errors`.
    """

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []

    async def open(self, path: str, viewport: dict[str, int] = PHONE, locale: str = "en-US") -> Page:
        context = await self.browser.new_context(viewport=viewport, base_url=self.base_url, locale=locale)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{path}: {error}"))
        page.on("console", lambda message: self._console(path, message))
        await page.goto(path)
        return page

    def _console(self, path: str, message: ConsoleMessage) -> None:
        # the seed's product image lives on another host, unreachable from the test machine
        if message.type == "error" and message.location.get("url", "").startswith(self.base_url):
            self.console_errors.append(f"{path}: {message.text} ({message.location.get('url')})")

    async def staff(
        self, path: str, login: str, viewport: dict[str, int] = PHONE, locale: str = "en-US"
    ) -> Page:
        """Open a studio or console page and sign in with the form (in any language)."""
        page = await self.open(path, viewport, locale)
        form = page.locator("#signin-form")
        await form.locator("[name=login]").fill(login)
        await form.locator("[name=password]").fill(PASSWORD)
        await form.locator("button[type=submit]").click()
        return page

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def people(browser: Browser, server: LiveServer) -> AsyncIterator[People]:
    crowd = People(browser, server.url)
    yield crowd
    await crowd.close()
    assert not crowd.errors, f"uncaught errors in the pages: {crowd.errors}"


async def video_plays(page: Page, selector: str = "#video") -> None:
    """Wait until the video shows real frames (width > 0) and its clock moves on."""
    has_frames = f"() => {{ const v = document.querySelector('{selector}'); return v.videoWidth > 0 && v.currentTime > 0; }}"
    await page.wait_for_function(has_frames, timeout=TIMEOUT_MS)
    started = await page.evaluate(f"() => document.querySelector('{selector}').currentTime")
    advanced = f"() => document.querySelector('{selector}').currentTime > {started} + 0.5"
    await page.wait_for_function(advanced, timeout=TIMEOUT_MS)


BUYER = {
    "name": "Li Lei",
    "phone": "+86 138 0013 8000",
    "email": "li.lei@example.com",
    "line1": "88 Jianguo Road",
    "city": "Hangzhou",
    "region": "Zhejiang",
    "postal_code": "310000",
    "country": "CN",
}


async def give_buyer_details(page: Page, details: dict[str, str] = BUYER) -> None:
    """Fill in the watch page's checkout form: who receives the order and where it goes."""
    form = page.locator("#checkout-form")
    for name, value in details.items():
        await form.locator(f"[name={name}]").fill(value)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])
