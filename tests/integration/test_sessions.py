"""Sessions end when they should: disabling an account or signing out refuses its tokens at
once, on HTTP and on the room socket; tokens in URLs are read only by the room socket."""

from __future__ import annotations

import aiohttp
import websockets
from room_client import RoomClient


async def _me(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict]:
    async with http.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.json()


async def _socket_close_code(server, room_id: int, token: str) -> int | None:
    async with websockets.connect(server.room_ws(room_id, token), open_timeout=30) as ws:
        first = await ws.recv()
        if '"snapshot"' in first:
            return None
        await ws.wait_closed()
        return ws.close_code


async def test_a_disabled_account_is_refused_at_once(server):
    world = await server.seed()
    anchor = world.tokens["anchor"]
    async with aiohttp.ClientSession() as http:
        assert (await _me(http, server.url, anchor))[0] == 200
        assert await _socket_close_code(server, world.room_id, anchor) is None
        async with http.post(
            f"{server.url}/api/users/{world.user_ids['anchor']}/disable",
            headers={"Authorization": f"Bearer {world.tokens['operator']}"},
        ) as response:
            assert response.status == 200
        status, body = await _me(http, server.url, anchor)
        assert (status, body["error"]["code"]) == (401, "invalid_token")
        assert await _socket_close_code(server, world.room_id, anchor) == 4401
        async with http.post(
            f"{server.url}/api/auth/login", json={"login": world.logins["anchor"], "password": "password123"}
        ) as response:
            assert (await response.json())["error"]["code"] == "invalid_credentials"
        assert (await _me(http, server.url, world.tokens["operator"]))[0] == 200


async def test_only_managers_disable_accounts_and_only_within_their_merchant(server):
    world = await server.seed()
    other = await server.seed()
    viewer_id, _ = await server.guest()
    async with aiohttp.ClientSession() as http:
        for actor, target in (
            ("anchor", world.user_ids["moderator"]),  # anchors may not manage users
            ("operator", other.user_ids["anchor"]),  # another merchant's account
            ("operator", world.user_ids["admin"]),  # an account outside any merchant
            ("operator", viewer_id),
        ):
            async with http.post(
                f"{server.url}/api/users/{target}/disable",
                headers={"Authorization": f"Bearer {world.tokens[actor]}"},
            ) as response:
                assert response.status == 403, (actor, target)
        async with http.post(
            f"{server.url}/api/users/{viewer_id}/disable",
            headers={"Authorization": f"Bearer {world.tokens['admin']}"},
        ) as response:
            assert response.status == 200


async def test_logout_ends_the_session_everywhere(server):
    world = await server.seed()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{server.url}/api/auth/login",
            json={"login": world.logins["moderator"], "password": "password123"},
        ) as response:
            token = (await response.json())["token"]
        async with http.get(f"{server.url}/api/me") as response:
            assert response.status == 200  # the cookie
        async with http.post(f"{server.url}/api/auth/logout") as response:
            assert response.status == 200
        status, body = await _me(http, server.url, token)
        assert (status, body["error"]["code"]) == (401, "invalid_token")
        assert await _socket_close_code(server, world.room_id, token) == 4401
        async with http.post(
            f"{server.url}/api/auth/login",
            json={"login": world.logins["moderator"], "password": "password123"},
        ) as response:
            fresh = (await response.json())["token"]
        assert (await _me(http, server.url, fresh))[0] == 200


async def test_a_guest_logout_refuses_its_token(server):
    world = await server.seed()
    _, token = await server.guest()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 200
        assert (await _me(http, server.url, token))[0] == 401
    assert await _socket_close_code(server, world.room_id, token) == 4401


async def test_tokens_in_the_url_are_for_the_room_socket_only(server):
    world = await server.seed()
    _, token = await server.guest()
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/api/me?token={token}") as response:
        assert response.status == 401
    assert await _socket_close_code(server, world.room_id, token) is None


async def test_an_open_room_socket_loses_its_powers_when_the_account_is_disabled(server):
    world = await server.seed()
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    await anchor.event("snapshot")
    await anchor.ok("chat.send", {"text": "before"})
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/users/{world.user_ids['anchor']}/disable",
            headers={"Authorization": f"Bearer {world.tokens['admin']}"},
        ) as response,
    ):
        assert response.status == 200
    refused = await anchor.send("card.pin", {"product_id": world.product_id})
    assert refused["error"]["code"] == "invalid_token"
    assert await anchor.closed() == 4401
