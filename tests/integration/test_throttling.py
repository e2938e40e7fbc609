"""Sign-in and guest creation are throttled, and sign-in takes as long for a login that does not
exist as for a wrong password, so neither guessing nor timing tells which logins exist."""

from __future__ import annotations

import time

import aiohttp
import pytest
from helpers import start_server


@pytest.fixture
async def strict(settings):
    settings.login_attempts_per_minute = 3
    settings.guests_per_minute = 2
    server = await start_server(settings)
    yield server
    await server.runner.cleanup()


async def _login(http: aiohttp.ClientSession, url: str, login: str, password: str) -> aiohttp.ClientResponse:
    async with http.post(f"{url}/api/auth/login", json={"login": login, "password": password}) as response:
        await response.read()
        return response


async def test_sign_in_is_throttled_per_login_with_retry_after(strict):
    world = await strict.seed()
    login = world.logins["operator"]
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            assert (await _login(http, strict.url, login, "wrong-password")).status == 401
        refused = await _login(http, strict.url, login, "password123")
        assert refused.status == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # another account is not locked by someone guessing this one
        assert (await _login(http, strict.url, world.logins["anchor"], "password123")).status == 200


async def test_sign_in_is_throttled_per_address(strict):
    async with aiohttp.ClientSession() as http:
        statuses = [(await _login(http, strict.url, f"nobody-{i}@test", "x")).status for i in range(40)]
    # ten times the per-login limit, plus what refills meanwhile
    assert statuses[:30] == [401] * 30 and statuses[-1] == 429


async def test_guest_creation_is_throttled_per_address(strict):
    async with aiohttp.ClientSession() as http:
        statuses = []
        for i in range(3):
            async with http.post(f"{strict.url}/api/auth/guest", json={"display_name": f"G{i}"}) as response:
                statuses.append(response.status)
                retry_after = response.headers.get("Retry-After")
    assert statuses == [200, 200, 429] and retry_after is not None


async def test_an_unknown_login_takes_as_long_as_a_wrong_password(server):
    world = await server.seed()

    async def fastest(login: str) -> float:
        times = []
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                started = time.perf_counter()
                assert (await _login(http, server.url, login, "wrong-password")).status == 401
                times.append(time.perf_counter() - started)
        return min(times)

    known = await fastest(world.logins["admin"])
    unknown = await fastest("nobody-at-all@test")
    assert unknown > known / 3, (known, unknown)


async def test_wrong_stream_keys_are_throttled_before_the_key_is_checked(server):
    world = await server.seed()
    url = f"{server.url}/api/rooms/{world.room_id}/whip"

    async def publish(key: str) -> int:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=b"v=0\r\n", headers=headers) as response,
        ):
            return response.status

    statuses = [await publish(f"sk_guess_{i}") for i in range(10)]
    assert statuses == [401] * 10
    assert await publish("sk_guess_more") == 429
    assert await publish(world.stream_key) == 429  # even the right key waits: guessing gains nothing
