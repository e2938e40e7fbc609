"""HTTP basics: health, readiness, metrics, the one error shape, size limits, security headers, sign-in."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import AuditLog


async def test_healthz_and_readyz_answer(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        async with http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["database"] == "ok"


async def test_metrics_are_prometheus_text(server):
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")


async def test_unknown_path_has_json_error_shape(server):
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/no/such/thing") as response:
        assert response.status == 404
        assert await response.json() == {"error": {"code": "not_found", "message": "Not Found"}}
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


async def test_oversized_body_is_refused_with_413(server, settings):
    body = b"x" * (settings.max_request_bytes + 1)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/auth/login", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"]["code"] == "payload_too_large"


async def test_malformed_json_and_wrong_type_are_typed_errors(server):
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/login", data=b"{nope", headers={"Content-Type": "application/json"}
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid_json"
        async with http.post(f"{server.url}/api/auth/login", data=b"a=b") as response:
            assert response.status == 415
        async with http.post(f"{server.url}/api/auth/login", json={"login": 5}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "invalid"


async def test_login_sets_cookie_and_me_reads_it(server):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/login", json={"login": "nobody@test", "password": "password123"}
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_credentials"
        async with http.get(
            f"{server.url}/api/me", headers={"Authorization": f"Bearer {world.tokens['operator']}"}
        ) as response:
            me = await response.json()
            assert me["role"] == "operator" and me["merchant_id"] == world.merchant_id
        async with http.get(f"{server.url}/api/me") as response:
            assert response.status == 401


async def test_guest_cookie_identifies_the_guest(server):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{server.url}/api/auth/guest", json={"display_name": "  Ann \x07 "}
        ) as response:
            body = await response.json()
            assert body["user"]["display_name"] == "Ann"
            assert body["user"]["is_guest"] is True
        async with http.get(f"{server.url}/api/me") as response:
            assert (await response.json())["display_name"] == "Ann"


async def test_password_login_issues_a_working_token(server):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{server.url}/api/auth/login",
            json={"login": world.logins["moderator"], "password": "password123"},
        ) as response:
            assert response.status == 200
            token = (await response.json())["token"]
        async with http.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}) as response:
            assert (await response.json())["role"] == "moderator"


async def test_stream_key_creation_is_role_checked_and_audited(server):
    world = await server.seed()
    url = f"{server.url}/api/rooms/{world.room_id}/stream-keys"
    async with aiohttp.ClientSession() as http:
        _, guest = await server.guest()
        async with http.post(url, json={}, headers={"Authorization": f"Bearer {guest}"}) as response:
            assert response.status == 403
        async with http.post(
            url, json={"label": "OBS"}, headers={"Authorization": f"Bearer {world.tokens['anchor']}"}
        ) as response:
            assert response.status == 201
            assert (await response.json())["stream_key"].startswith("sk_")
    async with server.app[SESSION_FACTORY]() as session:
        rows = (await session.scalars(select(AuditLog).where(AuditLog.action == "stream_key.create"))).all()
        assert [r.actor_id for r in rows] == [world.user_ids["anchor"]]


async def test_requests_are_counted_per_route_including_errors(server):
    async with aiohttp.ClientSession() as http:
        await (await http.get(f"{server.url}/api/me")).read()
        async with http.get(f"{server.url}/metrics") as response:
            text = await response.text()
    assert 'livecommerce_http_requests_total{method="GET",route="/api/me",status="401"} 1.0' in text
