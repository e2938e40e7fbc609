"""The app factory: builds the aiohttp application and its components from one Settings object."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce import draws, media, realtime
from livecommerce import web as http_surface
from livecommerce.appkeys import (
    DATABASE,
    DRAWS,
    ENGINE,
    HUB,
    MEDIA,
    METRICS,
    SESSION_FACTORY,
    SETTINGS,
    TOKENS,
)
from livecommerce.auth import Tokens
from livecommerce.commerce import setup as commerce
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.http import error_middleware, security_headers
from livecommerce.http.identity import Identity
from livecommerce.realtime.hub import CommandContext, DeferredHandler, Hub, Reply
from livecommerce.web.metrics import HttpMetrics

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    """Every component is created here, by the planes' install(), and handed to what uses it."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI starts the embedded database)")
    settings.ensure_secret_key()
    registry = CollectorRegistry()
    tokens = Tokens(
        settings.secret_key, session_ttl=settings.session_ttl_seconds, guest_ttl=settings.guest_ttl_seconds
    )
    # opens no connection until first used; closed after every plane has stopped
    db = Database.create(settings.database_url, pool_size=settings.db_pool_size)
    identity = Identity(settings, tokens, db.session_factory)
    # metrics outermost, so it counts the JSON error answers that error_middleware makes; the
    # caller is known inside the error middleware, so a refused token answers in the JSON shape
    app = web.Application(
        middlewares=[HttpMetrics(registry).middleware, error_middleware, identity.middleware],
        client_max_size=settings.max_request_bytes,
    )
    app[SETTINGS], app[TOKENS], app[METRICS] = settings, tokens, registry
    app[DATABASE], app[ENGINE], app[SESSION_FACTORY] = db, db.engine, db.session_factory
    app.cleanup_ctx.append(_closing(db))
    app.on_response_prepare.append(security_headers)

    hub = app[HUB] = realtime.install(app, settings, db, registry, identity)
    _setup_commerce(app, hub)
    app[DRAWS] = draws.install(app, settings, db, hub)
    app[MEDIA] = media.install(app, settings, db, hub)
    http_surface.install(app, settings, db, registry, identity)
    return app


def _closing(db: Database) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database_open(app: web.Application) -> AsyncIterator[None]:
        yield
        await db.close()

    return database_open


def _setup_commerce(app: web.Application, hub: Hub) -> None:
    """Commerce's `setup(app)` reads its components from the app keys and registers room
    commands that reach them through `hub.app` and `ctx.app`. The hub and its command contexts
    no longer carry the app, so commerce registers through a view of the hub that gives them one."""
    app[HUB] = _HubWithApp(hub, app)  # type: ignore[assignment]
    commerce.setup(app)
    app[HUB] = hub


class _ContextWithApp:
    def __init__(self, ctx: CommandContext, app: web.Application) -> None:
        self._ctx = ctx
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class _HubWithApp:
    def __init__(self, hub: Hub, app: web.Application) -> None:
        self._hub = hub
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub, name)

    def command(self, type: str, handler: Any) -> None:
        async def with_app(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
            return await handler(_ContextWithApp(ctx, self.app), data)

        self._hub.command(type, with_app)

    def deferred_command(self, type: str, handler: DeferredHandler) -> None:
        def with_app(ctx: CommandContext, data: dict[str, Any], reply: Reply) -> None:
            handler(_ContextWithApp(ctx, self.app), data, reply)  # type: ignore[arg-type]

        self._hub.deferred_command(type, with_app)
