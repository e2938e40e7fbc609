"""Wire the realtime plane into the app: the hub, its broker, the room socket and its commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce.appkeys import METRICS, SETTINGS
from livecommerce.realtime import chat, follows, likes, moderation, rooms
from livecommerce.realtime.hub import HUB, Hub
from livecommerce.realtime.room_socket import routes


def setup(app: web.Application) -> None:
    hub = Hub(app, app[SETTINGS], app[METRICS])
    app[HUB] = hub
    rooms.register(hub)
    chat.register(hub, app[SETTINGS])
    moderation.register(hub)
    likes.register(hub)
    follows.register(hub)
    app.add_routes(routes)
    app.add_routes(follows.routes)

    async def broker_running(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    async def close_sockets(app: web.Application) -> None:
        await hub.close_all()

    app.cleanup_ctx.append(broker_running)
    app.on_shutdown.append(close_sockets)
