"""Numbers past 64-bit ids and text holding NUL characters are typed `invalid` errors on every
surface (path ids, query strings, JSON bodies, room commands, the room socket's handshake),
never a 500 with a traceback."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

import aiohttp
import websockets
from room_client import RoomClient

from livecommerce.appkeys import HUB
from livecommerce.errors import AppError
from livecommerce.realtime import protocol

HUGE = 2**63  # one past PostgreSQL's bigint; JSON parsers still read it as an integer
ID_FIELDS = ("sale_id", "sku_id", "room_id", "order_id", "product_id", "draw_id", "message_id", "user_id")


_command_ids = itertools.count(1_000_000)


async def _command(client: RoomClient, type_: str, data: dict) -> dict:
    """Send a command with the standard library's JSON, which writes integers of any size;
    one refused by the connection's command rate is sent again once the bucket refills."""
    while True:
        command_id = next(_command_ids)
        await client.ws.send(json.dumps({"id": command_id, "type": type_, "data": data}))
        reply = await client.wait(
            lambda m, sent=command_id: m.get("id") == sent and m["type"] in ("ack", "error")
        )
        if reply["type"] == "ack" or reply["error"]["code"] != "rate_limited":
            return reply
        await asyncio.sleep(0.1)


async def _status(
    http: aiohttp.ClientSession, method: str, url: str, token: str, body=None
) -> tuple[int, dict]:
    async with http.request(
        method, url, json=body if body is not None else {}, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        text = await response.text()
        return response.status, (await response.json()) if text.startswith("{") else {}


async def test_every_route_with_an_id_refuses_a_number_past_64_bits(server):
    world = await server.seed()
    routes = sorted(
        {
            (route.method, route.resource.canonical)
            for route in server.app.router.routes()
            if route.method not in ("HEAD", "OPTIONS", "*")
            and route.resource is not None
            and "{" in route.resource.canonical
        }
    )
    assert len(routes) > 15
    async with aiohttp.ClientSession() as http:
        for method, pattern in routes:
            if pattern.startswith("/ws/"):
                continue
            path = re.sub(r"\{[^}]+\}", str(HUGE), pattern)
            status, body = await _status(http, method, f"{server.url}{path}", world.tokens["admin"])
            if not pattern.startswith("/api/"):
                assert status == 404, (method, pattern, status)  # a page: the missing-page answer
                continue
            assert status < 500 and "error" in body, (method, pattern, status, body)
            if set(re.findall(r"\{([^}]+)\}", pattern)) <= set(ID_FIELDS):
                assert status == 400 and body["error"]["code"] == "invalid", (method, pattern, body)


async def test_query_numbers_past_64_bits_are_invalid(server):
    world = await server.seed()
    admin = world.tokens["admin"]
    async with aiohttp.ClientSession() as http:
        for path in (
            f"/api/orders?room_id={HUGE}",
            f"/api/inventory?merchant_id={HUGE}",
            f"/api/rooms/{world.room_id}/dashboard?stream={HUGE}",
            f"/api/rooms/{world.room_id}/dashboard?bucket_s={HUGE}",
        ):
            status, body = await _status(http, "GET", f"{server.url}{path}", admin)
            assert status == 400 and body["error"]["code"] == "invalid", (path, status, body)


async def test_json_body_ids_past_64_bits_are_invalid(server):
    world = await server.seed()
    admin = world.tokens["admin"]
    sale = {"room_id": world.room_id, "sku_id": world.sku_id, "sale_price_minor": 100, "allocated": 1}
    async with aiohttp.ClientSession() as http:
        for path, body in (
            ("/api/orders", {"sale_id": HUGE, "quantity": 1, "idempotency_key": "k-12345678"}),
            ("/api/orders", {"sku_id": HUGE, "quantity": 1, "idempotency_key": "k-12345678"}),
            ("/api/sales", {**sale, "room_id": HUGE}),
            ("/api/sales", {**sale, "sku_id": HUGE}),
            ("/api/products", {"merchant_id": HUGE, "name": "Tea"}),
            (
                f"/api/rooms/{world.room_id}/draws",
                {"prize_sku_id": HUGE, "rule": "random", "duration_seconds": 60},
            ),
        ):
            status, answer = await _status(http, "POST", f"{server.url}{path}", admin, body)
            assert status == 400 and answer["error"]["code"] == "invalid", (path, body, status, answer)


async def test_every_room_command_refuses_ids_past_64_bits(server):
    world = await server.seed()
    client = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["admin"]))
    await client.event("snapshot")
    commands = server.app[HUB].command_types()
    assert {"order.place", "order.cancel", "card.pin", "user.mute", "draw.enter"} <= set(commands)
    for command in commands:
        reply = await _command(client, command, dict.fromkeys(ID_FIELDS, HUGE))
        assert reply["type"] == "ack" or reply["error"]["code"] != "internal", (command, reply)
    for command, data in (
        ("order.place", {"sale_id": HUGE, "quantity": 1, "idempotency_key": "k-12345678"}),
        ("order.cancel", {"order_id": HUGE}),
        ("card.pin", {"product_id": HUGE}),
        ("chat.delete", {"message_id": HUGE}),
        ("user.mute", {"user_id": HUGE}),
        ("user.unban", {"user_id": HUGE}),
        ("draw.enter", {"draw_id": HUGE}),
    ):
        reply = await _command(client, command, data)
        assert reply["type"] == "error" and reply["error"]["code"] == "invalid", (command, reply)
    await client.ok("chat.send", {"text": "still here"})
    await client.close()


async def test_the_room_socket_handshake_refuses_numbers_past_64_bits(server):
    world = await server.seed()
    _, token = await server.guest()
    for url in (
        f"{server.ws_url}/ws/rooms/{HUGE}?token={token}",
        server.room_ws(world.room_id, token, since=HUGE),
    ):
        async with websockets.connect(url, open_timeout=30) as ws:
            error = await ws.recv()
            assert isinstance(error, str)
            assert '"invalid"' in error
            await ws.wait_closed()
            assert ws.close_code == protocol.close_code_for(AppError("invalid", ""))


async def test_text_with_a_nul_character_is_invalid_everywhere(server, caplog):
    world = await server.seed()
    admin = world.tokens["admin"]
    nul = "a\x00b"
    async with aiohttp.ClientSession() as http:
        for path, body in (
            ("/api/auth/login", {"login": nul, "password": "password123"}),
            ("/api/auth/guest", {"display_name": "Ann", nul: 1}),
            ("/api/products", {"name": nul}),
            (f"/api/products/{world.product_id}/skus", {"code": "X1", "name": nul, "price_minor": 1}),
            (f"/api/rooms/{world.room_id}/stream-keys", {"label": nul}),
            (
                f"/api/rooms/{world.room_id}/draws",
                {"prize_text": nul, "rule": "random", "duration_seconds": 60},
            ),
        ):
            status, answer = await _status(http, "POST", f"{server.url}{path}", admin, body)
            assert status == 400 and answer["error"]["code"] == "invalid", (path, status, answer)
    target, _ = await server.guest("Target")
    client = await RoomClient.connect(server.room_ws(world.room_id, admin))
    await client.event("snapshot")
    for command, data in (
        ("chat.send", {"text": nul}),
        ("room.blocked_words", {"words": ["fine", nul]}),
        ("user.mute", {"user_id": target, "reason": nul}),
        ("draw.start", {"prize_text": nul, "rule": "random", "duration_seconds": 60}),
    ):
        reply = await client.send(command, data)
        assert reply["type"] == "error" and reply["error"]["code"] == "invalid", (command, reply)
    await client.ok("chat.send", {"text": "still here"})
    await client.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
