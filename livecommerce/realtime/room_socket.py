"""`GET /ws/rooms/{room_id}`: authenticate, join or resume, then read commands until the end.

A thin shell: parsing, resume decisions and fan-out live in protocol, resume and hub.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from aiohttp import WSMsgType, web

from livecommerce.auth import Principal
from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.http import int_param, query_int
from livecommerce.http.identity import Identity, token_of
from livecommerce.http.throttle import TokenBucket
from livecommerce.realtime import event_types, names, protocol
from livecommerce.realtime.connection import Connection
from livecommerce.realtime.hub import Hub
from livecommerce.realtime.moderation import Moderation
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


def _version(request: web.Request) -> None:
    raw = request.query.get("v", str(protocol.PROTOCOL_VERSION))
    if raw != str(protocol.PROTOCOL_VERSION):
        raise AppError("invalid", f"protocol version {raw!r} is not supported; this server speaks v=1")


async def _admit(
    request: web.Request, hub: Hub, identity: Identity, secret_key: str, moderation: Moderation
) -> tuple[Principal, int, int | None, str]:
    """Everything checked before a client may join: version, origin, identity, room, bans."""
    _version(request)
    if not identity.trusted_origin(request):  # another site's page would join with the viewer's cookie
        raise AppError("forbidden", "pages of another site may not open this room socket")
    since = query_int(request, "since")
    token = token_of(request, from_query=True)  # a browser cannot set headers on a WebSocket
    if not token:
        raise AppError("unauthorized", "send a session or guest token (?token=, cookie or Bearer)")
    principal = await identity.authenticate(token)
    room_id = int_param(request, "room_id")
    await hub.room_info(room_id)
    fingerprint = client_hash(secret_key, request.remote)
    await moderation.check_not_banned(room_id, principal, fingerprint)
    principal = await names.take_room_name(hub.broker, room_id, principal)
    return principal, room_id, since, fingerprint


def route(hub: Hub, identity: Identity, settings: Settings, moderation: Moderation) -> web.RouteDef:
    """The endpoint, bound to the services it admits clients with and serves them from."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await room_socket(request, hub, identity, settings, moderation)

    return web.get("/ws/rooms/{room_id}", handler)


async def room_socket(
    request: web.Request, hub: Hub, identity: Identity, settings: Settings, moderation: Moderation
) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        protocols=(protocol.SUBPROTOCOL,),
        # aiohttp refuses a frame as long as its limit; the exact limit is checked when reading
        max_msg_size=settings.ws_max_frame_bytes + 1,
        heartbeat=HEARTBEAT_SECONDS,
    )
    if not ws.can_prepare(request).ok:
        raise AppError("bad_request", "this endpoint speaks WebSocket: send an Upgrade request")
    try:
        admitted: tuple[Principal, int, int | None, str] | AppError = await _admit(
            request, hub, identity, settings.secret_key, moderation
        )
    except AppError as exc:
        admitted = exc
    await ws.prepare(request)
    if isinstance(admitted, AppError):
        await ws.send_str(protocol.error(None, admitted).decode())
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
        await _read_commands(hub, conn, ws, identity, settings.ws_max_frame_bytes)
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


async def _read_commands(
    hub: Hub, conn: Connection, ws: web.WebSocketResponse, identity: Identity, max_bytes: int
) -> None:
    """Answer commands until the client leaves. Once the server has closed the connection, what
    the client still sends is read and dropped until its close arrives (or the grace ends), so
    the socket is never shut with unread data, which would reset it and lose the close code.

    Each command first checks that the connection's token was not revoked since the join
    (logout, a disabled account); a revoked one ends the connection with 4401.
    """
    flood = TokenBucket(COMMANDS_PER_SECOND, COMMAND_BURST)
    refused = 0
    async for message in ws:
        if conn.closed:
            continue
        if message.type is WSMsgType.BINARY:
            conn.close(protocol.CLOSE_UNSUPPORTED_DATA, "binary frames are not part of the protocol")
            continue
        if message.type is not WSMsgType.TEXT:
            return
        if len(message.data) * 4 > max_bytes and len(message.data.encode()) > max_bytes:
            conn.close(protocol.CLOSE_MESSAGE_TOO_BIG, "frame too large")
            continue
        try:
            command = protocol.parse_command(message.data)
        except protocol.ProtocolError as exc:
            conn.send(protocol.error(exc.command_id, exc))
            continue
        if not flood.allow():
            refused += 1
            if refused > FLOOD_REJECTIONS:
                conn.close(protocol.CLOSE_FLOOD, "too many commands")
                continue
            limited = AppError("rate_limited", f"at most {COMMANDS_PER_SECOND:g} commands per second")
            conn.send(protocol.error(command.id, limited))
            continue
        refused = 0
        try:
            await identity.confirm(conn.principal)
        except AppError as exc:
            conn.send(protocol.error(command.id, exc))
            conn.close(protocol.close_code_for(exc), exc.code)
            continue
        await hub.dispatch(conn, command)
