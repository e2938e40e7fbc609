"""The edges of HTTP: oversized requests in the JSON error shape, who may read /metrics, the
Server header, and answers that must never be cached."""

from __future__ import annotations

import aiohttp
import pytest
from helpers import start_server


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/healthz?" + "q" * 20_000, {}),
        ("/healthz", {"X-Big": "h" * 20_000}),
        ("/healthz", {f"X-Many-{i}": "v" for i in range(200)}),
    ],
)
async def test_oversized_urls_and_headers_get_the_json_error_shape(server, path, headers):
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}{path}", headers=headers) as response:
        assert response.status == 400
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Server"] == "livecommerce"
        body = await response.json()
        assert body["error"]["code"] == "bad_request" and body["error"]["message"]


async def test_the_server_header_names_no_version(server):
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/no/such/thing", "/"):
            async with http.get(f"{server.url}{path}") as response:
                assert response.headers["Server"] == "livecommerce"


async def test_auth_and_api_answers_are_never_cached(server):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/login", json={"login": world.logins["anchor"], "password": "password123"}
        ) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
        async with http.post(f"{server.url}/api/auth/guest", json={"display_name": "Ann"}) as response:
            assert response.headers["Cache-Control"] == "no-store"
        headers = {"Authorization": f"Bearer {world.tokens['anchor']}"}
        async with http.get(f"{server.url}/api/me", headers=headers) as response:
            assert response.headers["Cache-Control"] == "no-store"
        async with http.post(
            f"{server.url}/api/rooms/{world.room_id}/stream-keys", json={}, headers=headers
        ) as response:
            assert response.status == 201
            assert response.headers["Cache-Control"] == "no-store"


async def test_metrics_are_refused_through_a_proxy_and_from_other_addresses(settings):
    settings.metrics_allow = ["10.9.9.0/24"]
    settings.metrics_token = "scrape-" + "t" * 24
    server = await start_server(settings)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/metrics") as response:
                assert response.status == 403
                assert (await response.json())["error"]["code"] == "forbidden"
            async with http.get(
                f"{server.url}/metrics", headers={"Authorization": "Bearer wrong-token"}
            ) as response:
                assert response.status == 403
            async with http.get(
                f"{server.url}/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"}
            ) as response:
                assert response.status == 200
                assert "livecommerce_http_requests" in await response.text()
    finally:
        await server.runner.cleanup()


async def test_metrics_from_loopback_but_relayed_by_a_proxy_are_refused(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/metrics") as response:
            assert response.status == 200
        async with http.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.5"}) as response:
            assert response.status == 403
