"""A real `websockets` client for one room: joins, keeps every message, sends commands and
waits for their acks or for events, with timeouts and no fixed sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

import websockets
from helpers import wait_for

SUBPROTOCOL = "livecommerce.v1"


class RoomClient:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, timeout: float = 15) -> RoomClient:
        """Open the socket and wait for the join snapshot."""
        ws = await websockets.connect(url, subprotocols=[SUBPROTOCOL], open_timeout=timeout, max_size=None)
        client = cls(ws)
        first = await client.wait(lambda m: m.get("type") in ("snapshot", "error"), timeout, "the snapshot")
        if first["type"] == "error":
            await client.close()
            raise AssertionError(f"join refused: {first}")
        client.snapshot = first["data"]
        return client

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                message = json.loads(frame)
                self.messages.extend(message if isinstance(message, list) else [message])

    async def wait(self, predicate, timeout: float = 15, what: str = "a message") -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((m for m in self.messages if predicate(m)), None)

        return await wait_for(found, timeout=timeout, message=what)

    async def command(self, type_: str, data: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """Send a command and return its ack or typed error message."""
        command_id = next(self._ids)
        await self.ws.send(json.dumps({"id": command_id, "type": type_, "data": data}))
        return await self.wait(
            lambda m: m.get("type") in ("ack", "error") and m.get("id") == command_id,
            timeout,
            f"reply to {type_}",
        )

    async def event(self, type_: str, *, private: bool = False, timeout: float = 15) -> dict[str, Any]:
        """The first event of this type; private events carry no sequence number."""
        return await self.wait(
            lambda m: m.get("type") == type_ and (m.get("seq") is None) == private, timeout, f"event {type_}"
        )

    def seen(self, type_: str) -> bool:
        return any(m.get("type") == type_ for m in self.messages)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
