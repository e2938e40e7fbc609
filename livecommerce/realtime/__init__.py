"""Realtime plane: the room WebSocket, its protocol, fan-out, presence and the broker between nodes.
`install(...)` creates the hub, registers the room's own commands and adds the room socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.http.identity import Identity
from livecommerce.realtime import chat, follows, likes, moderation, room_socket
from livecommerce.realtime.hub import Hub


def install(
    app: web.Application, settings: Settings, db: Database, metrics: CollectorRegistry, identity: Identity
) -> Hub:
    """The hub that every other plane publishes through; its broker runs while the app does."""
    hub = Hub(settings, db, metrics)
    hub.snapshot_provider("room", hub.rooms.state)
    chat.register(hub, settings, db.session_factory)
    room_moderation = moderation.register(hub, db.session_factory)
    likes.register(hub)
    room_follows = follows.register(hub, db.session_factory)
    app.router.add_routes(
        [room_socket.route(hub, identity, settings, room_moderation), *room_follows.routes()]
    )

    async def broker_running(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    async def close_sockets(app: web.Application) -> None:
        await hub.close_all()

    app.cleanup_ctx.append(broker_running)
    app.on_shutdown.append(close_sockets)
    return hub
