"""The page routes: each room's three pages, the index, static files, and escaping of room titles."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from helpers import LiveServer
from sqlalchemy import update

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import Room


async def fetch(url: str) -> tuple[int, str, Mapping[str, str]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text(), response.headers


async def test_each_page_of_a_room_is_served_with_the_content_security_policy(server: LiveServer) -> None:
    world = await server.seed()
    for page in ("studio", "watch", "console"):
        status, body, headers = await fetch(f"{server.url}/{page}/{world.room_id}")
        assert status == 200
        assert f'data-room-id="{world.room_id}"' in body
        assert f'src="/static/js/{page}.js"' in body
        assert "script-src 'self' https://js.stripe.com" in headers["Content-Security-Policy"]
        assert "<script>" not in body  # no inline scripts: the policy would block them


async def test_a_room_title_is_escaped_in_the_pages_and_the_index(server: LiveServer) -> None:
    world = await server.seed()
    async with server.app[SESSION_FACTORY].begin() as session:
        await session.execute(
            update(Room)
            .where(Room.id == world.room_id)
            .values(title='<img src=x onerror="alert(1)"> {{room_id}}')
        )
    for url in (f"{server.url}/watch/{world.room_id}", f"{server.url}/"):
        status, body, _ = await fetch(url)
        assert status == 200
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; {{room_id}}" in body


async def test_an_unknown_room_gets_a_page_that_says_so(server: LiveServer) -> None:
    status, body, headers = await fetch(f"{server.url}/watch/999999")
    assert status == 404
    assert "No such room" in body
    assert headers["Content-Type"].startswith("text/html")
    status, _, _ = await fetch(f"{server.url}/watch/not-a-number")
    assert status == 404


async def test_the_index_links_every_room_and_the_payment_mode_reaches_the_watch_page(
    server: LiveServer,
) -> None:
    world = await server.seed()
    status, body, _ = await fetch(f"{server.url}/")
    assert status == 200
    for page in ("watch", "studio", "console"):
        assert f'href="/{page}/{world.room_id}"' in body
    _, watch, _ = await fetch(f"{server.url}/watch/{world.room_id}")
    assert 'data-payments="test"' in watch


async def test_static_modules_are_served_as_javascript(server: LiveServer) -> None:
    for name in ("api.js", "room.js", "format.js", "watch.js", "studio.js", "console.js"):
        status, body, headers = await fetch(f"{server.url}/static/js/{name}")
        assert status == 200, name
        assert headers["Content-Type"].startswith(("text/javascript", "application/javascript"))
        assert body.startswith("//")
