"""The room protocol as plain functions: command parsing, event envelopes, frames and close codes.

Nothing here does I/O. The WebSocket handler feeds it text and writes the bytes it returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from livecommerce.errors import HTTP_STATUS, AppError

PROTOCOL_VERSION = 1
SUBPROTOCOL = "livecommerce.v1"

# Close codes (RFC 6455 section 7.4): standard ones, then 4000 + the HTTP status of an error
# code for closes caused by a typed error (4401 invalid_token, 4403 banned, 4404 not_found).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_SLOW_CONSUMER = 4008
CLOSE_FLOOD = 4029


def close_code_for(error: AppError) -> int:
    """The close code for a connection ended by a typed error."""
    return 4000 + HTTP_STATUS[error.code]


@dataclass(frozen=True, slots=True)
class Command:
    """A client command: `{"id", "type", "data"}`; the id comes back on the ack or error."""

    id: str | int
    type: str
    data: dict[str, Any]


class ProtocolError(AppError):
    """A frame that is not a well-formed command; `command_id` is set when it could be read."""

    def __init__(self, code: str, message: str, command_id: str | int | None = None) -> None:
        super().__init__(code, message)
        self.command_id = command_id


def parse_command(text: str) -> Command:
    """Parse one text frame into a Command, or raise ProtocolError saying exactly what is wrong."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid", "a command is a JSON object with id, type and data")
    command_id = message.get("id")
    if isinstance(command_id, bool) or not isinstance(command_id, str | int) or command_id == "":
        raise ProtocolError("invalid", "id: a non-empty string or an integer is required")
    if isinstance(command_id, str) and len(command_id) > 64:
        raise ProtocolError("invalid", "id: at most 64 characters")
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("invalid", "type: a non-empty string is required", command_id)
    data = message.get("data", {})
    if not isinstance(data, dict):
        raise ProtocolError("invalid", "data: must be an object", command_id)
    return Command(command_id, kind, data)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def event_parts(type_: str, data: Any, ts: float) -> tuple[bytes, bytes]:
    """An event envelope split around its sequence number, so the seq can be filled in later.

    `head + str(seq).encode() + tail` is `{"type", "seq", "ts", "data"}`; the broker fills the
    seq in at the moment it assigns it (atomically in Redis), so the event is serialised once.
    """
    head = b'{"type":' + orjson.dumps(type_) + b',"seq":'
    tail = b',"ts":' + orjson.dumps(round(ts, 3)) + b',"data":' + orjson.dumps(data) + b"}"
    return head, tail


def unsequenced_event(type_: str, data: Any, ts: float) -> bytes:
    """An event outside the room sequence (private events, presence): `"seq": null`."""
    head, tail = event_parts(type_, data, ts)
    return head + b"null" + tail


def ack(command_id: str | int, data: Any) -> bytes:
    return orjson.dumps({"type": "ack", "id": command_id, "data": data})


def error(command_id: str | int | None, exc: AppError) -> bytes:
    return orjson.dumps({"type": "error", "id": command_id, "error": exc.to_dict()})


def batch(payloads: list[bytes]) -> bytes:
    """Several messages in one frame: a JSON array of message objects, in order."""
    if len(payloads) == 1:
        return payloads[0]
    return b"[" + b",".join(payloads) + b"]"


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 5.2), as a server sends it.

    Server frames are not masked, so the same frame bytes can be written to every connection.
    """
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A WebSocket close frame, for connections that must be dropped without a handshake."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return struct.pack("!BB", 0x88, len(payload)) + payload


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """A room event as it travels between nodes: routing fields plus the finished envelope."""

    room_id: int
    kind: str
    type: str
    to_user: int | None
    seq: int | None
    payload: bytes


def broker_header(room_id: int, kind: str, type_: str, to_user: int | None) -> bytes:
    """The routing header in front of a payload on the wire; the seq and a newline follow it."""
    return f"{room_id} {kind} {type_} {to_user or 0} ".encode()


def encode_broker_message(message: BrokerMessage) -> bytes:
    header = broker_header(message.room_id, message.kind, message.type, message.to_user)
    return header + str(message.seq or 0).encode() + b"\n" + message.payload


def decode_broker_message(raw: bytes) -> BrokerMessage:
    header, _, payload = raw.partition(b"\n")
    room_id, kind, type_, to_user, seq = header.decode().split(" ")
    return BrokerMessage(int(room_id), kind, type_, int(to_user) or None, int(seq) or None, payload)
