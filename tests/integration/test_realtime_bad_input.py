"""Every kind of bad input on the room socket ends in a typed error or a documented close code,
and the room carries on for everyone else."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
import websockets
from room_client import RoomClient

from livecommerce.realtime import protocol


async def _room_with_bystander(server):
    world = await server.seed()
    _, token = await server.guest("Bystander")
    bystander = await RoomClient.connect(server.room_ws(world.room_id, token))
    await bystander.event("snapshot")
    return world, token, bystander


async def _room_still_works(bystander: RoomClient) -> None:
    await bystander.ok("chat.send", {"text": "still here"})
    await bystander.event("chat.message", text="still here")


@pytest.mark.parametrize(
    ("frame", "code", "command_id"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid", None),
        ('{"type": "chat.send"}', "invalid", None),
        ('{"id": true, "type": "chat.send"}', "invalid", None),
        ('{"id": 5}', "invalid", 5),
        ('{"id": 6, "type": "chat.send", "data": "hi"}', "invalid", 6),
        ('{"id": 7, "type": "chat.send", "data": {}}', "invalid", 7),
        ('{"id": 8, "type": "chat.send", "data": {"text": 12}}', "invalid", 8),
        ('{"id": "x", "type": "no.such.command"}', "unknown_command", "x"),
        ('{"id": 9, "type": "card.pin", "data": {"product_id": "abc"}}', "forbidden", 9),
    ],
)
async def test_malformed_commands_get_typed_errors(server, frame, code, command_id):
    world, token, bystander = await _room_with_bystander(server)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    await client.ws.send(frame)
    reply = await client.wait(lambda m: m["type"] == "error")
    assert reply["error"]["code"] == code
    assert reply["id"] == command_id
    assert set(reply["error"]) >= {"code", "message"}
    await client.ok("chat.send", {"text": "connection survives"})
    await _room_still_works(bystander)
    await client.close()
    await bystander.close()


async def test_binary_frame_closes_with_1003(server):
    world, token, bystander = await _room_with_bystander(server)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    await client.ws.send(b'{"id": 1, "type": "chat.send"}')
    assert await client.closed() == protocol.CLOSE_UNSUPPORTED_DATA
    await _room_still_works(bystander)
    await bystander.close()


async def test_oversized_frame_closes_with_1009(server, settings):
    world, token, bystander = await _room_with_bystander(server)
    client = await RoomClient.connect(server.room_ws(world.room_id, token), max_size=None)
    await client.event("snapshot")
    text = "x" * (settings.ws_max_frame_bytes + 1)
    await client.ws.send(orjson.dumps({"id": 1, "type": "chat.send", "data": {"text": text}}).decode())
    assert await client.closed() == protocol.CLOSE_MESSAGE_TOO_BIG
    await _room_still_works(bystander)
    await bystander.close()


async def test_flood_is_rate_limited_then_closed_with_4029(server):
    world, token, bystander = await _room_with_bystander(server)
    client = await RoomClient.connect(server.room_ws(world.room_id, token))
    await client.event("snapshot")
    frame = orjson.dumps({"id": 1, "type": "ping.nothing"}).decode()
    for _ in range(200):
        try:
            await client.ws.send(frame)
        except websockets.ConnectionClosed:
            break
    assert await client.closed() == protocol.CLOSE_FLOOD
    assert any(m.get("error", {}).get("code") == "rate_limited" for m in client.messages)
    await _room_still_works(bystander)
    await bystander.close()


@pytest.mark.parametrize(
    ("token_kind", "room", "query", "close_code", "error_code"),
    [
        ("none", "own", {}, 4401, "unauthorized"),
        ("forged", "own", {}, 4401, "invalid_token"),
        ("guest", "missing", {}, 4404, "not_found"),
        ("guest", "own", {"since": "abc"}, 4400, "invalid"),
        ("guest", "own", {"v": "2"}, 4400, "invalid"),
    ],
)
async def test_refused_joins_close_with_documented_codes(
    server, token_kind, room, query, close_code, error_code
):
    world = await server.seed()
    _, guest_token = await server.guest("Ann")
    token = {"none": "", "forged": guest_token[:-4] + "AAAA", "guest": guest_token}[token_kind]
    room_id = world.room_id if room == "own" else world.room_id + 1000
    client = await RoomClient.connect(server.room_ws(room_id, token, **query))
    error = await client.wait(lambda m: m["type"] == "error")
    assert error["error"]["code"] == error_code
    assert await client.closed() == close_code


async def test_token_from_bearer_header_and_subprotocol(server):
    world = await server.seed()
    _, token = await server.guest("Ann")
    client = await RoomClient.connect(
        f"{server.ws_url}/ws/rooms/{world.room_id}",
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=[protocol.SUBPROTOCOL],
    )
    assert client.ws.subprotocol == protocol.SUBPROTOCOL
    assert (await client.event("snapshot"))["data"]["you"]["display_name"] == "Ann"
    await client.close()


async def test_plain_http_request_gets_json_error(server):
    world = await server.seed()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/ws/rooms/{world.room_id}") as response,
    ):
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "bad_request"
