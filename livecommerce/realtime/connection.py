"""One viewer's WebSocket in a room: who it is, and a bounded, non-blocking way to write to it.

Frames are written straight to the transport as pre-built bytes, so a broadcast costs one
`write()` per connection. The transport's unsent bytes are the connection's send queue: when
they exceed the limit the client is not keeping up, and it is closed with 4008 instead of
slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from aiohttp import web

from livecommerce.auth import Principal
from livecommerce.realtime.protocol import CLOSE_SLOW_CONSUMER, close_frame, text_frame

if TYPE_CHECKING:
    from collections.abc import Callable

# A closed client gets this long to answer the close frame before the TCP connection is
# aborted; meanwhile what it sends is read and dropped (see room_socket).
CLOSE_GRACE_SECONDS = 5.0

_ids = itertools.count(1)


class Connection:
    __slots__ = (
        "client_hash",
        "closed",
        "id",
        "joined_at",
        "limit_bytes",
        "live",
        "on_closed",
        "pending",
        "principal",
        "room_id",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        principal: Principal,
        room_id: int,
        *,
        limit_bytes: int,
        joined_at: float,
        client_hash: str,
        on_closed: Callable[[Connection, int], None],
    ) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.transport = transport
        self.principal = principal
        self.room_id = room_id
        self.limit_bytes = limit_bytes
        self.joined_at = joined_at
        self.client_hash = client_hash
        self.on_closed = on_closed
        self.closed = False
        # Until the join or resume reply is out, room events wait here with their seq.
        self.live = False
        self.pending: list[tuple[int | None, bytes]] = []

    @property
    def user_id(self) -> int:
        return self.principal.user_id

    def write(self, frame: bytes) -> bool:
        """Queue one pre-built frame; False when the connection is closed or was too slow."""
        if self.closed:
            return False
        transport = self.transport
        if transport.is_closing():
            self.closed = True
            self.on_closed(self, 1006)
            return False
        if transport.get_write_buffer_size() > self.limit_bytes:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return False
        transport.write(frame)
        return True

    def send(self, payload: bytes) -> bool:
        return self.write(text_frame(payload))

    def hold(self, seq: int | None, payload: bytes) -> None:
        """Keep an event for a joining connection; a join that lags too far is a slow consumer."""
        if self.closed:
            return
        if sum(len(p) for _, p in self.pending) > self.limit_bytes:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        self.pending.append((seq, payload))

    def close(self, code: int, reason: str) -> None:
        """Close without waiting on the client: write the close frame, abort if it is never answered.

        The transport stays open for reading until the client's close arrives: closing a socket
        that still has unread data sends a TCP reset, and the client would lose the close frame.
        """
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if not transport.is_closing():
            transport.write(close_frame(code, reason))
            asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, transport.abort)
        self.on_closed(self, code)
