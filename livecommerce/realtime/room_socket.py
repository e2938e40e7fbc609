"""`GET /ws/rooms/{room_id}`: authenticate, join or resume, then read commands until the end.

A thin shell: parsing, resume decisions and fan-out live in protocol, resume and hub.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from aiohttp import WSMsgType, web

from livecommerce.auth import Principal, Tokens
from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.http import token_of
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.connection import Connection
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.moderation import Moderation
from livecommerce.realtime.ratelimit import TokenBucket
from livecommerce.realtime.resume import Resume, plan_resume

log = logging.getLogger(__name__)

# Per connection: commands per second and burst; past FLOOD_REJECTIONS refused commands in a
# row the connection is closed with CLOSE_FLOOD.
COMMANDS_PER_SECOND = 20.0
COMMAND_BURST = 40
FLOOD_REJECTIONS = 20
REPLAY_BATCH = 100
HEARTBEAT_SECONDS = 25.0


def client_hash(secret_key: str, address: str | None) -> str:
    """A keyed hash of the client's address: recognises a banned guest without storing its IP."""
    return hmac.new(secret_key.encode(), (address or "").encode(), hashlib.sha256).hexdigest()


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise AppError("invalid", "since must be an integer sequence number") from None


def _version(request: web.Request) -> None:
    raw = request.query.get("v", str(protocol.PROTOCOL_VERSION))
    if raw != str(protocol.PROTOCOL_VERSION):
        raise AppError("invalid", f"protocol version {raw!r} is not supported; this server speaks v=1")


async def _admit(
    request: web.Request, hub: Hub, tokens: Tokens, secret_key: str, moderation: Moderation
) -> tuple[Principal, int, int | None, str]:
    """Everything checked before a client may join: version, identity, room, bans."""
    _version(request)
    since = _since(request)
    token = token_of(request)
    if not token:
        raise AppError("unauthorized", "send a session or guest token (?token=, cookie or Bearer)")
    principal = tokens.verify(token)
    try:
        room_id = int(request.match_info["room_id"])
    except ValueError:
        raise AppError("not_found", "room_id must be a number") from None
    await hub.room_info(room_id)
    fingerprint = client_hash(secret_key, request.remote)
    await moderation.check_not_banned(room_id, principal, fingerprint)
    return principal, room_id, since, fingerprint


def route(hub: Hub, tokens: Tokens, settings: Settings, moderation: Moderation) -> web.RouteDef:
    """The endpoint, bound to the services it admits clients with and serves them from."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await room_socket(request, hub, tokens, settings, moderation)

    return web.get("/ws/rooms/{room_id}", handler)


async def room_socket(
    request: web.Request, hub: Hub, tokens: Tokens, settings: Settings, moderation: Moderation
) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        protocols=(protocol.SUBPROTOCOL,),
        max_msg_size=settings.ws_max_frame_bytes,
        heartbeat=HEARTBEAT_SECONDS,
    )
    if not ws.can_prepare(request).ok:
        raise AppError("bad_request", "this endpoint speaks WebSocket: send an Upgrade request")
    try:
        admitted: tuple[Principal, int, int | None, str] | AppError = await _admit(
            request, hub, tokens, settings.secret_key, moderation
        )
    except AppError as exc:
        admitted = exc
    await ws.prepare(request)
    if isinstance(admitted, AppError):
        await ws.send_bytes(protocol.error(None, admitted))
        await ws.close(code=protocol.close_code_for(admitted), message=admitted.code.encode())
        return ws
    principal, room_id, since, fingerprint = admitted
    transport = request.transport
    assert transport is not None  # prepared WebSocket responses always have one
    conn = Connection(
        ws,
        transport,
        principal,
        room_id,
        limit_bytes=settings.ws_send_queue * settings.ws_max_frame_bytes,
        joined_at=time.time(),
        client_hash=fingerprint,
        on_closed=hub.connection_closed,
    )
    await hub.attach(conn)
    try:
        await _join(hub, conn, since)
        await _read_commands(hub, conn, ws)
    finally:
        await hub.detach(conn)
    return ws


async def _join(hub: Hub, conn: Connection, since: int | None) -> None:
    """Replay exactly what the client missed, or send a snapshot; then deliver live."""
    if since is not None:
        view = await hub.history_after(conn.room_id, since)
        if plan_resume(since, view) is Resume.REPLAY:
            hello = {
                "v": protocol.PROTOCOL_VERSION,
                "since": since,
                "latest": view.latest,
                "replayed": len(view.events),
            }
            conn.send(protocol.unsequenced_event(event_types.RESUMED, hello, time.time()))
            for start in range(0, len(view.events), REPLAY_BATCH):
                chunk = view.events[start : start + REPLAY_BATCH]
                conn.send(protocol.batch([payload for _, payload in chunk]))
            hub.go_live(conn, view.events[-1][0] if view.events else since)
            return
    seq = await hub.latest_seq(conn.room_id)
    snapshot = await hub.snapshot(conn.room_id, conn.principal, seq)
    head, tail = protocol.event_parts(event_types.SNAPSHOT, snapshot, time.time())
    conn.send(head + str(seq).encode() + tail)
    hub.go_live(conn, seq)


async def _read_commands(hub: Hub, conn: Connection, ws: web.WebSocketResponse) -> None:
    flood = TokenBucket(COMMANDS_PER_SECOND, COMMAND_BURST)
    refused = 0
    async for message in ws:
        if conn.closed:
            return
        if message.type is WSMsgType.BINARY:
            conn.close(protocol.CLOSE_UNSUPPORTED_DATA, "binary frames are not part of the protocol")
            return
        if message.type is not WSMsgType.TEXT:
            return
        try:
            command = protocol.parse_command(message.data)
        except protocol.ProtocolError as exc:
            conn.send(protocol.error(exc.command_id, exc))
            continue
        if not flood.allow():
            refused += 1
            if refused > FLOOD_REJECTIONS:
                conn.close(protocol.CLOSE_FLOOD, "too many commands")
                return
            limited = AppError("rate_limited", f"at most {COMMANDS_PER_SECOND:g} commands per second")
            conn.send(protocol.error(command.id, limited))
            continue
        refused = 0
        await hub.dispatch(conn, command)
