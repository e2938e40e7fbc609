"""Prize draws: the verifiable algorithm (`verification`), the service that runs draws
(`service`) and its HTTP routes and room commands (`api`). `install(...)` wires them in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce.commerce.events import CommerceEvents
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.draws.api import DrawsApi
from livecommerce.draws.service import DrawService
from livecommerce.realtime.hub import Hub


def install(
    app: web.Application, settings: Settings, db: Database, hub: Hub, shop_events: CommerceEvents
) -> DrawService:
    """The draw service, its routes and room commands; its closer and its announcer of
    entrants run while the app does. A claimed prize's stock change reaches rooms through the
    commerce plane's `shop_events`."""
    service = DrawService(
        db.session_factory, hub, settings.draw_min_watch_seconds, stock_changed=shop_events.free_stock_changed
    )
    api = DrawsApi(service)
    app.router.add_routes(api.routes())
    api.register(hub)

    async def closer_running(app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(service.run_closer(), name="draw-closer"),
            asyncio.create_task(service.run_announcer(), name="draw-entrants"),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(closer_running)
    return service
