"""The text floating over the video stays legible whatever the picture: with a white frame and
with a black frame behind them, every line of the watch page's and the studio's overlays (chat,
card, top bar, chips) has at least 4.5:1 contrast against what is rendered behind it.

The backing is measured, not computed from CSS: the text is made transparent, the page is
captured, and each text line's box is compared pixel by pixel with the text's colour."""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from browser_fixtures import People, browser, people, server
from helpers import LiveServer
from PIL import Image
from playwright.async_api import Page, expect
from room_client import RoomClient

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
__all__ = ["browser", "people", "server"]

MINIMUM_CONTRAST = 4.5  # WCAG 2 AA for body text
FRAMES = {"white": (255, 255, 255), "black": (0, 0, 0)}
FRAME_TIMEOUT_S = 60  # the fake video paints late on a busy machine
REPAINT_AFTER_S = 5

SHOW_FRAME = """([r, g, b]) => {
  const video = document.querySelector('video');
  const canvas = document.createElement('canvas');
  canvas.width = innerWidth; canvas.height = innerHeight;
  const paint = () => {
    const context = canvas.getContext('2d');
    context.fillStyle = `rgb(${r}, ${g}, ${b})`;
    context.fillRect(0, 0, canvas.width, canvas.height);
  };
  paint();
  clearInterval(window.framePainter);
  window.framePainter = setInterval(paint, 100);
  video.srcObject = canvas.captureStream(10);
  video.dataset.fit = 'cover';
  return video.play();
}"""

# Every visible text line inside the overlays: its colour and its line boxes.
TEXT_LINES = """(roots) => {
  const lines = [];
  for (const root of document.querySelectorAll(roots)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const element = node.parentElement;
      if (!node.textContent.trim() || element.closest('[hidden], select, .visually-hidden')) continue;
      const style = getComputedStyle(element);
      if (style.visibility !== 'visible' || style.display === 'none') continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const boxes = [...range.getClientRects()].filter((r) => r.width > 2 && r.height > 2)
        .map((r) => [r.left, r.top, r.right, r.bottom]);
      if (boxes.length) lines.push({ text: node.textContent.trim(), color: style.color, boxes });
    }
  }
  return lines;
}"""

HIDE_TEXT = """(roots) => {
  const style = document.createElement('style');
  style.id = 'hide-text';
  style.textContent = roots.split(',').map((r) => `${r}, ${r} *`).join(',') +
    ' { color: transparent !important; text-shadow: none !important; -webkit-text-fill-color: transparent !important; }';
  document.head.append(style);
}"""


def luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB values in 0..255 (any shape ending in 3)."""
    channel = rgb.astype(float) / 255
    linear = np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def parse_color(css: str) -> np.ndarray:
    numbers = css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()
    return np.array([float(n) for n in numbers[:3]])


def worst_contrasts(screenshot: bytes, lines: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    """Each text line's contrast against its backing: the 2nd percentile over the line's pixels
    (a line box's outermost anti-aliased pixels do not decide it)."""
    pixels = np.asarray(Image.open(io.BytesIO(screenshot)).convert("RGB"))
    results = []
    for line in lines:
        text = luminance(parse_color(line["color"]))
        backing = np.concatenate(
            [
                luminance(
                    pixels[round(top) + 1 : round(bottom) - 1, round(left) + 1 : round(right) - 1]
                ).ravel()
                for left, top, right, bottom in line["boxes"]
            ]
        )
        if not backing.size:
            continue
        ratios = (np.maximum(text, backing) + 0.05) / (np.minimum(text, backing) + 0.05)
        results.append((float(np.percentile(ratios, 2)), line["text"][:40], line["color"]))
    return results


async def screenshot_over(page: Page, rgb: tuple[int, int, int], name: str) -> bytes:
    """A capture of the page once the frame shows on screen (a pixel clear of the overlays).
    The frame is put in the video again every few seconds until it shows: the page's own player
    (retrying, or falling back to HLS) may take the video element back meanwhile."""
    painted_at = time.monotonic()  # the caller has just put the frame in
    deadline = painted_at + FRAME_TIMEOUT_S
    while True:
        if time.monotonic() - painted_at > REPAINT_AFTER_S:
            await page.evaluate(SHOW_FRAME, list(rgb))
            painted_at = time.monotonic()
        shot = await page.screenshot()
        shown = tuple(np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))[300, 5])
        if shown == rgb:
            return shot
        assert time.monotonic() < deadline, f"the {name} frame never showed behind the overlays: {shown}"


async def low_contrast_lines(page: Page, roots: str) -> list[str]:
    """The overlay lines under the minimum contrast over a white and over a black frame."""
    failures = []
    for name, rgb in FRAMES.items():
        await page.evaluate(SHOW_FRAME, list(rgb))
        lines = await page.evaluate(TEXT_LINES, roots)
        assert lines, f"no overlay text found under {roots}"
        await page.evaluate(HIDE_TEXT, roots)
        shot = await screenshot_over(page, rgb, name)
        await page.evaluate("() => document.getElementById('hide-text').remove()")
        failures += [
            f"{text!r} ({color}) {ratio:.2f}:1 over {name}"
            for ratio, text, color in worst_contrasts(shot, lines)
            if ratio < MINIMUM_CONTRAST
        ]
    return failures


async def room_with_chat_and_card(server: LiveServer) -> Any:
    world = await server.seed()
    operator = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["operator"]))
    _, token = await server.guest("Ann")
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    try:
        await operator.ok("card.pin", {"product_id": world.product_id})
        await operator.ok("chat.send", {"text": "Welcome, the tea is on sale"})
        await viewer.ok("chat.send", {"text": "Does it ship to Leeds?"})
    finally:
        await operator.close()
        await viewer.close()
    return world


async def test_watch_page_overlays_keep_their_contrast_over_white_and_black_video(
    server: LiveServer, people: People
) -> None:
    world = await room_with_chat_and_card(server)
    watch = await people.open(f"/watch/{world.room_id}")
    await expect(watch.locator("#chat-list li")).to_have_count(2)
    await expect(watch.locator("#card")).to_be_visible()
    await expect(watch.locator("#me-name")).not_to_have_text("…")
    failures = await low_contrast_lines(watch, ".overlay-top, .overlay-bottom, #stage-status")
    assert not failures, failures


async def test_studio_overlays_keep_their_contrast_over_white_and_black_video(
    server: LiveServer, people: People
) -> None:
    world = await room_with_chat_and_card(server)
    studio = await people.staff(f"/studio/{world.room_id}", world.logins["anchor"])
    await expect(studio.locator("#chat-list li")).to_have_count(2)
    failures = await low_contrast_lines(studio, ".overlay-top, .overlay-bottom")
    assert not failures, failures
