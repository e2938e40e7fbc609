"""The room socket at the protocol's edges: refusals are JSON text, a frame of exactly the
documented maximum is accepted, and a close code always reaches a client that floods."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets
from room_client import RoomClient

from livecommerce.realtime import protocol


async def test_a_refused_join_explains_itself_in_a_text_frame(server):
    world = await server.seed()
    async with websockets.connect(server.room_ws(world.room_id, "not-a-token"), open_timeout=30) as ws:
        error = await ws.recv()
        assert isinstance(error, str)  # a browser gets a string, not a Blob
        assert orjson.loads(error)["error"]["code"] == "invalid_token"
        await ws.wait_closed()
    assert ws.close_code == 4401


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_a_frame_of_exactly_the_maximum_size_is_accepted(server, settings, compression):
    world = await server.seed()
    _, token = await server.guest()
    client = await RoomClient.connect(
        server.room_ws(world.room_id, token), max_size=None, compression=compression
    )
    await client.event("snapshot")
    envelope = orjson.dumps({"id": "max", "type": "chat.send", "data": {"text": ""}})
    text = "x" * (settings.ws_max_frame_bytes - len(envelope))
    frame = orjson.dumps({"id": "max", "type": "chat.send", "data": {"text": text}}).decode()
    assert len(frame.encode()) == settings.ws_max_frame_bytes
    await client.ws.send(frame)
    reply = await client.wait(lambda m: m.get("id") == "max")
    assert reply["error"]["code"] == "invalid"  # too long for chat, but read and answered
    await client.ok("chat.send", {"text": "still connected"})
    await client.close()


async def _flood(server, room_id: int, token: str) -> int | None:
    client = await RoomClient.connect(server.room_ws(room_id, token))
    await client.event("snapshot")
    frame = orjson.dumps({"id": 1, "type": "ping.nothing"}).decode()
    for _ in range(300):
        try:
            await client.ws.send(frame)
        except websockets.ConnectionClosed:
            break
    return await client.closed(timeout=30)


async def test_every_flooding_client_receives_its_close_code(server):
    world = await server.seed()
    tokens = [(await server.guest(f"Flood {i}"))[1] for i in range(12)]
    for _ in range(3):
        codes = await asyncio.gather(*(_flood(server, world.room_id, token) for token in tokens))
        assert codes == [protocol.CLOSE_FLOOD] * len(tokens)


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_a_frame_one_byte_over_the_maximum_closes_with_1009(server, settings, compression):
    world = await server.seed()
    _, token = await server.guest()
    client = await RoomClient.connect(
        server.room_ws(world.room_id, token), max_size=None, compression=compression
    )
    await client.event("snapshot")
    envelope = orjson.dumps({"id": "max", "type": "chat.send", "data": {"text": ""}})
    frame = orjson.dumps(
        {
            "id": "max",
            "type": "chat.send",
            "data": {"text": "x" * (settings.ws_max_frame_bytes + 1 - len(envelope))},
        }
    ).decode()
    await client.ws.send(frame)
    assert await client.closed() == protocol.CLOSE_MESSAGE_TOO_BIG
