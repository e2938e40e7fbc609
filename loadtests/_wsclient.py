"""A lean WebSocket client for load generators: one asyncio Protocol, frames parsed in place.

Thousands of simulated viewers per process must cost far less than the server they measure,
so this skips everything a real client needs but a load generator does not: no extensions,
no fragmentation, a zero masking key (servers unmask any key), no close handshake.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

# on_text(payload, received_at, send_text) is called for each text frame
OnText = Callable[[bytes, float, Callable[[str], None]], None]


def client_frame(text: str) -> bytes:
    """A masked text frame with the all-zero masking key (payload bytes unchanged)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return header + b"\x00\x00\x00\x00" + payload


class LeanWebSocket(asyncio.Protocol):
    def __init__(self, host: str, path: str, on_text: OnText) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's too)
        self.transport.write(self.request)

    def send_text(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(text))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status:
                self._fail(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded = True
            self.opened.set_result(None)
        now = time.time()
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1] & 0x7F
            start = offset + 2
            if second == 126:
                if size - start < 2:
                    break
                (second,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif second == 127:
                if size - start < 8:
                    break
                (second,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            end = start + second
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == 0x1:
                self.on_text(bytes(buffer[start:end]), now, self.send_text)
            elif opcode == 0x9 and self.transport is not None:
                payload = bytes(buffer[start:end])
                self.transport.write(struct.pack("!BB", 0x8A, 0x80 | len(payload)) + b"\x00" * 4 + payload)
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
            offset = end
        del buffer[:offset]

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(host: str, port: int, path: str, on_text: OnText) -> LeanWebSocket:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: LeanWebSocket(f"{host}:{port}", path, on_text), host, port
    )
    await protocol.opened
    return protocol
