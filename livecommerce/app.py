"""The app factory: builds the aiohttp application and its components from one Settings object."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce import commerce, draws, media, realtime
from livecommerce import web as http_surface
from livecommerce.appkeys import (
    COMMERCE,
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
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.http import error_middleware, security_headers
from livecommerce.http.identity import Identity
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
    shop = app[COMMERCE] = commerce.install(app, settings, db, hub, registry)
    app[DRAWS] = draws.install(app, settings, db, hub, shop.events)
    media_node = app[MEDIA] = media.install(app, settings, db, hub)
    http_surface.install(
        app,
        settings,
        db,
        registry,
        identity,
        {"stream_registry": media_node.registry_state},
        media_node.recordings,
    )
    return app


def _closing(db: Database) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database_open(app: web.Application) -> AsyncIterator[None]:
        yield
        await db.close()

    return database_open
