"""The room hub: publishes room events through the broker and fans them out to this node's sockets.

It owns the commands and their dispatch, fan-out (with the tick batch), resume history and the
tick; presence, viewer samples and room lookups are handed to `presence`, `viewer_samples` and
`rooms`.

Other planes use only `Hub.publish`, `Hub.command`, `Hub.snapshot_provider`,
`Hub.on_chat`, `Hub.on_tick` and `Hub.watchers` (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from livecommerce.auth import Principal
from livecommerce.config import Settings
from livecommerce.db.engine import Database, database_unreachable
from livecommerce.errors import AppError
from livecommerce.http import DATABASE_UNAVAILABLE
from livecommerce.realtime import event_types, protocol
from livecommerce.realtime.broker import Broker, make_broker
from livecommerce.realtime.coalesce import TickBatch
from livecommerce.realtime.connection import Connection
from livecommerce.realtime.presence import Presence
from livecommerce.realtime.resume import HistoryView
from livecommerce.realtime.rooms import RoomDirectory, RoomInfo
from livecommerce.realtime.viewer_samples import record_viewers

log = logging.getLogger(__name__)

CHAT = "chat"
PRIVATE = "private"


@dataclass(slots=True)
class CommandContext:
    """Who sent a command, in which room, and the hub to publish through."""

    principal: Principal
    room_id: int
    merchant_id: int
    hub: Hub
    room: RoomInfo


CommandHandler = Callable[[CommandContext, dict[str, Any]], Awaitable[dict[str, Any]]]
Reply = Callable[[dict[str, Any] | BaseException], None]
"""Answers a deferred command: with the ack's data, or an exception (AppError: a typed error)."""
DeferredHandler = Callable[[CommandContext, dict[str, Any], Reply], None]
SnapshotProvider = Callable[[int, Principal], Awaitable[Any]]
ChatObserver = Callable[[int, Principal, str], Awaitable[None]]
BanObserver = Callable[[int, Connection], Awaitable[None]]
TickObserver = Callable[[], Awaitable[None]]
PublishObserver = Callable[[int, Any], Awaitable[None]]


@dataclass(slots=True)
class LocalRoom:
    """This node's connections to one room."""

    room_id: int
    batch: TickBatch
    live: set[Connection] = field(default_factory=set)
    joining: set[Connection] = field(default_factory=set)
    ready: dict[Connection, int] = field(default_factory=dict)  # joined, waiting for the batch
    by_user: dict[int, set[Connection]] = field(default_factory=dict)
    viewers_sent: int | None = None

    def __len__(self) -> int:
        return len(self.live) + len(self.joining)


class RealtimeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge(
            "livecommerce_ws_connections", "Open room WebSockets on this node", registry=registry
        )
        self.frames = Counter(
            "livecommerce_ws_frames_sent", "WebSocket frames written to clients", registry=registry
        )
        self.events = Counter(
            "livecommerce_room_events_published", "Room events published", ["kind"], registry=registry
        )
        self.chat_dropped = Counter(
            "livecommerce_ws_chat_sampled_out",
            "Chat messages not delivered live in large rooms",
            registry=registry,
        )
        self.closes = Counter(
            "livecommerce_ws_closes", "Room WebSockets closed by the server", ["code"], registry=registry
        )


class Hub:
    def __init__(self, settings: Settings, db: Database, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.presence_interval = settings.presence_interval_seconds
        self.broker: Broker = make_broker(settings, presence_ttl=max(5.0, 5 * self.presence_interval))
        self.presence = Presence(self.broker)
        self.rooms = RoomDirectory(db.session_factory)
        self._record_viewers = partial(record_viewers, db.session_factory)
        self.metrics = RealtimeMetrics(registry)
        self._commands: dict[str, CommandHandler] = {}
        self._deferred: dict[str, DeferredHandler] = {}
        self._snapshot_providers: dict[str, SnapshotProvider] = {}
        self._chat_observers: list[ChatObserver] = []
        self._ban_observers: list[BanObserver] = []
        self._tick_observers: list[TickObserver] = []
        self._publish_observers: dict[str, list[PublishObserver]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._rooms: dict[int, LocalRoom] = {}
        self._chat_per_tick = max(1, round(settings.chat_max_per_second * settings.realtime_tick_ms / 1000))
        self._ticker: asyncio.Task[None] | None = None

    # -- the interface other planes use ------------------------------------------------------

    async def publish(
        self, room_id: int, type: str, data: Any, *, kind: str = "commerce", to_user: int | None = None
    ) -> int | None:
        """Publish a room event; returns its seq (None for a private event, which has none)."""
        if not type or not kind or any(c.isspace() for c in type + kind):
            raise ValueError(f"event type {type!r} and kind {kind!r} must be non-empty, without spaces")
        self.metrics.events.labels(PRIVATE if to_user is not None else kind).inc()
        if to_user is not None:
            payload = protocol.unsequenced_event(type, data, time.time())
            await self.broker.publish_private(room_id, type, to_user, payload)
            return None
        head, tail = protocol.event_parts(type, data, time.time())
        seq = await self.broker.publish_event(room_id, kind, type, head, tail)
        for observer in self._publish_observers.get(type, ()):
            self._spawn(observer(room_id, data))
        return seq

    def command(self, type: str, handler: CommandHandler) -> None:
        """Register a command that is answered before the connection's next command is read."""
        self._check_free(type)
        self._commands[type] = handler

    def deferred_command(self, type: str, handler: DeferredHandler) -> None:
        """Register a command answered whenever it is ready, while the connection's next
        commands are read: an order tap waits for its batch to commit without holding up a
        buyer's next tap. The handler gets a `Reply` and must call it exactly once."""
        self._check_free(type)
        self._deferred[type] = handler

    def command_types(self) -> list[str]:
        """Every registered command type, sorted."""
        return sorted([*self._commands, *self._deferred])

    def _check_free(self, type: str) -> None:
        if type in self._commands or type in self._deferred:
            raise ValueError(f"command {type!r} is already registered")

    async def dispatch(self, conn: Connection, command: protocol.Command) -> None:
        """Answer a connection's command, now or (for a deferred command) when it is ready."""
        deferred = self._deferred.get(command.type)
        if deferred is None:
            conn.send(await self.run_command(conn, command))
            return
        reply = self._reply_to(conn, command)
        try:
            room = await self.room_info(conn.room_id)
            deferred(self.context(conn.principal, room), command.data, reply)
        except Exception as exc:
            reply(exc)

    def _reply_to(self, conn: Connection, command: protocol.Command) -> Reply:
        def reply(result: dict[str, Any] | BaseException) -> None:
            conn.send(self._answer(conn, command, result))

        return reply

    def _answer(
        self, conn: Connection, command: protocol.Command, result: dict[str, Any] | BaseException
    ) -> bytes:
        """The ack for a command's result, or the typed error for its failure."""
        if isinstance(result, AppError):
            return protocol.error(command.id, result)
        if isinstance(result, BaseException) and database_unreachable(result):
            log.warning(
                "command %s in room %s: the database is unreachable (%s)", command.type, conn.room_id, result
            )
            return protocol.error(command.id, DATABASE_UNAVAILABLE)
        if isinstance(result, BaseException):
            log.error("command %s failed in room %s", command.type, conn.room_id, exc_info=result)
            return protocol.error(command.id, AppError("internal", "internal error"))
        return protocol.ack(command.id, result)

    def snapshot_provider(self, name: str, fn: SnapshotProvider) -> None:
        if name in self._snapshot_providers or name in ("v", "seq", "viewers"):
            raise ValueError(f"snapshot part {name!r} is already taken")
        self._snapshot_providers[name] = fn

    def on_chat(self, fn: ChatObserver) -> None:
        self._chat_observers.append(fn)

    def on_local_ban(self, fn: BanObserver) -> None:
        """`async fn(room_id, connection)` for each connection this node closes for a ban."""
        self._ban_observers.append(fn)

    def on_publish(self, type: str, fn: PublishObserver) -> None:
        """`async fn(room_id, data)` after this node publishes a room event of `type`: it runs
        once per event, on the publishing node, so another plane reacts to an event (the live's
        end) without importing the plane that publishes it."""
        self._publish_observers.setdefault(type, []).append(fn)

    def on_tick(self, fn: TickObserver) -> None:
        """`async fn()` once per tick (`REALTIME_TICK_MS`): work that coalesces per tick (likes)."""
        self._tick_observers.append(fn)

    async def watchers(self, room_id: int) -> dict[int, float]:
        """User id -> when that user joined the room (epoch seconds), across every node."""
        return await self.presence.members(room_id)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self._deliver)
        self._ticker = asyncio.create_task(self._tick(), name="realtime-hub-tick")

    async def close_all(self, code: int = protocol.CLOSE_GOING_AWAY) -> None:
        """Close every socket with `code` (1001 on shutdown) and wait briefly for the handshakes."""
        sockets = [conn.ws for room in self._rooms.values() for conn in (*room.live, *room.joining)]
        if sockets:
            await asyncio.wait(
                [
                    asyncio.ensure_future(ws.close(code=code, message=b"server shutting down"))
                    for ws in sockets
                ],
                timeout=3,
            )

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self._run_tick_observers()  # a last round: what was pending is not lost
        await self.broker.close()

    # -- rooms and connections -----------------------------------------------------------------

    async def room_info(self, room_id: int) -> RoomInfo:
        """The room's cached settings; `not_found` if there is no such room."""
        return await self.rooms.info(room_id)

    def forget_room_info(self, room_id: int) -> None:
        """Drop this node's cached settings now; other nodes drop theirs on `room.settings`."""
        self.rooms.forget(room_id)

    def context(self, principal: Principal, room: RoomInfo) -> CommandContext:
        return CommandContext(principal, room.room_id, room.merchant_id, self, room)

    async def attach(self, conn: Connection) -> None:
        """Register a joining connection: room events are held for it until `go_live`."""
        room = self._rooms.get(conn.room_id)
        if room is None:
            room = self._rooms[conn.room_id] = LocalRoom(conn.room_id, TickBatch(self._chat_per_tick))
        room.joining.add(conn)
        user_conns = room.by_user.setdefault(conn.user_id, set())
        user_conns.add(conn)
        self.metrics.connections.inc()
        if len(user_conns) == 1:
            await self.presence.join(
                conn.room_id, conn.user_id, conn.joined_at, staff=conn.principal.is_staff
            )

    def go_live(self, conn: Connection, after_seq: int) -> None:
        """Send the held events newer than what the client already has, then deliver live.

        While the room's tick batch holds events, the connection waits for that batch to go
        out (holding everything meanwhile), so it gets each event exactly once and in order.
        """
        room = self._rooms.get(conn.room_id)
        if room is None or conn not in room.joining:
            return
        if room.batch:
            room.ready[conn] = after_seq
            return
        self._promote(room, conn, after_seq)

    def _promote(self, room: LocalRoom, conn: Connection, after_seq: int) -> None:
        held = [payload for seq, payload in conn.pending if seq is None or seq > after_seq]
        conn.pending = []
        if conn not in room.joining or (held and not conn.send(protocol.batch(held))):
            return
        room.joining.discard(conn)
        room.live.add(conn)
        conn.live = True

    async def detach(self, conn: Connection) -> None:
        """Forget a connection (idempotent); the user leaves presence with their last one."""
        if self._forget(conn):
            await self.presence.leave(conn.room_id, conn.user_id)

    def _forget(self, conn: Connection) -> bool:
        """Drop the connection from its room at once; True when it was the user's last one."""
        room = self._rooms.get(conn.room_id)
        if room is None or (conn not in room.live and conn not in room.joining):
            return False
        room.live.discard(conn)
        room.joining.discard(conn)
        self.metrics.connections.dec()
        user_conns = room.by_user.get(conn.user_id, set())
        user_conns.discard(conn)
        last = not user_conns
        if last:
            room.by_user.pop(conn.user_id, None)
        if not room:
            del self._rooms[conn.room_id]
        return last

    def connection_closed(self, conn: Connection, code: int) -> None:
        """Called by a Connection the server closed, possibly in the middle of a fan-out."""
        self.metrics.closes.labels(str(code)).inc()
        if self._forget(conn):
            self._spawn(self.presence.leave(conn.room_id, conn.user_id))

    async def history_after(self, room_id: int, since: int) -> HistoryView:
        return await self.broker.history_after(room_id, since)

    async def latest_seq(self, room_id: int) -> int:
        return await self.broker.latest_seq(room_id)

    async def snapshot(self, room_id: int, principal: Principal, seq: int) -> dict[str, Any]:
        """The join snapshot: protocol version, seq, viewer count and every provider's part.

        A provider that fails contributes null (and a log line) rather than keeping the
        viewer out of the room.
        """
        providers = self._snapshot_providers
        parts = await asyncio.gather(
            *(fn(room_id, principal) for fn in providers.values()), return_exceptions=True
        )
        viewers = await self.presence.viewers(room_id)
        snapshot: dict[str, Any] = {"v": protocol.PROTOCOL_VERSION, "seq": seq, "viewers": viewers}
        for name, part in zip(providers, parts, strict=True):
            if isinstance(part, Exception):
                log.error("snapshot part %r failed in room %s", name, room_id, exc_info=part)
                part = None
            snapshot[name] = part
        return snapshot

    async def run_command(self, conn: Connection, command: protocol.Command) -> bytes:
        """Run a client command and return the ack or typed error to send back."""
        handler = self._commands.get(command.type)
        if handler is None:
            error = AppError("unknown_command", f"unknown command type {command.type!r}")
            return protocol.error(command.id, error)
        try:
            room = await self.room_info(conn.room_id)
            result = await handler(self.context(conn.principal, room), command.data)
        except Exception as exc:
            return self._answer(conn, command, exc)
        return self._answer(conn, command, result)

    async def chat_accepted(self, room_id: int, principal: Principal, text: str) -> None:
        for observer in self._chat_observers:
            try:
                await observer(room_id, principal, text)
            except Exception:
                log.exception("chat observer %r failed", observer)

    def local_connections(self, room_id: int, user_id: int | None = None) -> list[Connection]:
        room = self._rooms.get(room_id)
        if room is None:
            return []
        if user_id is not None:
            return list(room.by_user.get(user_id, ()))
        return [*room.live, *room.joining]

    # -- delivery ------------------------------------------------------------------------------

    def _deliver(self, message: protocol.BrokerMessage) -> None:
        """Called once per event on every node, in the room's seq order."""
        self._observe(message)
        room = self._rooms.get(message.room_id)
        if room is None:
            return
        if message.to_user is not None:
            for conn in list(room.by_user.get(message.to_user, ())):
                if conn.live:
                    conn.send(message.payload)
                else:
                    conn.hold(None, message.payload)
            return
        for conn in list(room.joining):
            conn.hold(message.seq, message.payload)
        if len(room.live) >= self.settings.coalesce_connections:
            room.batch.add(message.payload, droppable=message.kind == CHAT)
            return
        self._flush(room, message.payload)

    def _flush(self, room: LocalRoom, payload: bytes | None = None) -> None:
        """Send the tick batch (and one more event) to live sockets; then let waiting joins in."""
        payloads = room.batch.take() if room.batch else []
        if payload is not None:
            payloads.append(payload)
        if payloads:
            self._fan_out(room, payloads)
        if room.ready:
            ready, room.ready = room.ready, {}
            for conn, after_seq in ready.items():
                self._promote(room, conn, after_seq)

    def _fan_out(self, room: LocalRoom, payloads: list[bytes]) -> None:
        frame = protocol.text_frame(protocol.batch(payloads))
        sent = 0
        for conn in list(room.live):
            if conn.write(frame):
                sent += 1
        self.metrics.frames.inc(sent)

    def _observe(self, message: protocol.BrokerMessage) -> None:
        """Events that change what this node enforces, whichever node published them."""
        if message.type == event_types.ROOM_SETTINGS:
            self.forget_room_info(message.room_id)
        elif message.type == event_types.USER_BANNED:
            user_id = orjson.loads(message.payload)["data"]["user_id"]
            for conn in self.local_connections(message.room_id, user_id):
                conn.write(protocol.text_frame(message.payload))
                conn.close(protocol.close_code_for(AppError("banned", "")), "banned")
                for observer in self._ban_observers:
                    self._spawn(observer(message.room_id, conn))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background room work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _tick(self) -> None:
        tick = self.settings.realtime_tick_ms / 1000
        next_presence = 0.0
        while True:
            await asyncio.sleep(tick)
            try:
                for room in list(self._rooms.values()):
                    if room.batch or room.ready:
                        self._flush(room)
                    if room.batch.dropped:
                        self.metrics.chat_dropped.inc(room.batch.dropped)
                        room.batch.dropped = 0
                await self._run_tick_observers()
                now = time.monotonic()
                if now >= next_presence:
                    next_presence = now + self.presence_interval
                    await self._presence_round()
            except Exception:
                log.exception("realtime tick failed")

    async def _run_tick_observers(self) -> None:
        """Each tick observer in turn; one that fails is logged and does not stop the others."""
        for observer in self._tick_observers:
            try:
                await observer()
            except Exception:
                log.exception("tick observer %r failed", observer)

    async def _presence_round(self) -> None:
        """Keep this node's presence alive and send changed viewer counts to local sockets.

        Counts go out at most once per interval and only when they changed, so a join storm
        in a large room becomes one `presence` message per interval, not one per join. The
        counts are also kept per minute for the sales dashboard (`viewer_samples`).
        """
        members = {
            room_id: {user: min(c.joined_at for c in conns) for user, conns in room.by_user.items() if conns}
            for room_id, room in self._rooms.items()
        }
        staff = {
            room_id: {
                user for user, conns in room.by_user.items() if any(c.principal.is_staff for c in conns)
            }
            for room_id, room in self._rooms.items()
        }
        await self.presence.refresh(members, staff)
        counts: dict[int, int] = {}
        for room_id, room in list(self._rooms.items()):
            viewers = counts[room_id] = await self.presence.viewers(room_id)
            if viewers != room.viewers_sent:
                room.viewers_sent = viewers
                payload = protocol.unsequenced_event(event_types.PRESENCE, {"viewers": viewers}, time.time())
                self._fan_out(room, [payload])
        if any(counts.values()):
            self._spawn(self._record_viewers(counts))
