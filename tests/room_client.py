"""A room WebSocket client for tests: sends commands, awaits acks, collects room events."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson
import websockets

_ids = itertools.count(1)


class RoomClient:
    """One real `websockets` connection to /ws/rooms/{id}; every message is kept in `messages`."""

    def __init__(self, connection: websockets.ClientConnection) -> None:
        self.ws = connection
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.close_code: int | None = None

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> RoomClient:
        connection = await websockets.connect(url, open_timeout=30, **kwargs)
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                decoded = orjson.loads(frame)
                batch = decoded if isinstance(decoded, list) else [decoded]
                async with self._arrived:
                    self.messages.extend(batch)
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            async with self._arrived:
                self._arrived.notify_all()

    async def wait(self, predicate, timeout: float = 15.0) -> dict[str, Any]:
        """The first message (old or new) matching predicate."""
        async with asyncio.timeout(timeout), self._arrived:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                if self._reader.done():
                    raise AssertionError(f"closed ({self.close_code}) before the message arrived")
                await self._arrived.wait()

    async def event(self, type_: str, timeout: float = 15.0, **data: Any) -> dict[str, Any]:
        def match(message: dict[str, Any]) -> bool:
            if message.get("type") != type_:
                return False
            body = message.get("data") or {}
            return all(body.get(k) == v for k, v in data.items())

        return await self.wait(match, timeout)

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == type_]

    async def send(
        self, type_: str, data: dict[str, Any] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Send a command and return its ack or error message."""
        command_id = next(_ids)
        await self.ws.send(orjson.dumps({"id": command_id, "type": type_, "data": data or {}}).decode())
        return await self.wait(lambda m: m.get("id") == command_id and m["type"] in ("ack", "error"), timeout)

    async def ok(self, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = await self.send(type_, data)
        assert reply["type"] == "ack", reply
        return reply["data"]

    async def closed(self, timeout: float = 15.0) -> int | None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._reader

    @property
    def last_seq(self) -> int:
        return max((m["seq"] for m in self.messages if m.get("seq") is not None), default=0)
