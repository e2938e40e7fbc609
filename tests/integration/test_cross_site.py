"""Pages of other sites cannot use a viewer's session cookie: no cookie-signed changes and no
room socket from an untrusted Origin; Bearer tokens and trusted origins are unaffected."""

from __future__ import annotations

import aiohttp
import pytest
import websockets
from helpers import start_server

EVIL = "https://evil.example"
FRIEND = "https://shop.example"


@pytest.fixture
async def site(settings):
    settings.allowed_origins = [FRIEND]
    server = await start_server(settings)
    yield server
    await server.runner.cleanup()


async def _first_frame(url: str, origin: str | None) -> tuple[str, int | None]:
    async with websockets.connect(url, open_timeout=30, origin=origin) as ws:
        first = await ws.recv()
        if '"snapshot"' in first:
            return first, None
        await ws.wait_closed()
        return first, ws.close_code


async def test_cookie_signed_changes_from_another_site_are_refused(site):
    world = await site.seed()
    url = f"{site.url}/api/rooms/{world.room_id}/stream-keys"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{site.url}/api/auth/login", json={"login": world.logins["anchor"], "password": "password123"}
        ) as response:
            token = (await response.json())["token"]
        async with http.post(url, json={}, headers={"Origin": EVIL}) as response:
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "forbidden"
        async with http.get(f"{site.url}/api/me", headers={"Origin": EVIL}) as response:
            assert response.status == 200  # reading is not a change
        host = site.url.removeprefix("http://")
        for origin in (f"http://{host}", FRIEND, None):
            headers = {"Origin": origin} if origin else {}
            async with http.post(url, json={}, headers=headers) as response:
                assert response.status == 201, origin
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={}, headers={"Origin": EVIL, "Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 201  # a Bearer token is not sent by a browser on its own


async def test_the_room_socket_refuses_pages_of_other_sites(site):
    world = await site.seed()
    _, token = await site.guest()
    url = site.room_ws(world.room_id, token)
    first, code = await _first_frame(url, EVIL)
    assert code == 4403 and '"forbidden"' in first
    host = site.url.removeprefix("http://")
    for origin in (f"http://{host}", FRIEND, None):
        _, code = await _first_frame(url, origin)
        assert code is None, origin
