"""The app factory: builds the aiohttp application and its components from one Settings object."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce import commerce, media
from livecommerce.appkeys import COMMERCE, DATABASE, ENGINE, METRICS, SESSION_FACTORY, SETTINGS, TOKENS
from livecommerce.auth import Tokens
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.draws import api as draws
from livecommerce.http import error_middleware, security_headers
from livecommerce.realtime import setup as realtime
from livecommerce.realtime.hub import HUB
from livecommerce.web import accounts_api, health, metrics, pages

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[DATABASE].close()


def create_app(settings: Settings) -> web.Application:
    """Every component is created here and reached through the app's typed keys."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI starts the embedded database)")
    settings.ensure_secret_key()
    # metrics outermost, so it counts the JSON error answers that error_middleware makes
    app = web.Application(
        middlewares=[metrics.metrics_middleware, error_middleware], client_max_size=settings.max_request_bytes
    )
    app[SETTINGS] = settings
    app[TOKENS] = Tokens(
        settings.secret_key, session_ttl=settings.session_ttl_seconds, guest_ttl=settings.guest_ttl_seconds
    )
    app[METRICS] = CollectorRegistry()
    db = Database.create(settings.database_url, pool_size=settings.db_pool_size)
    app[DATABASE], app[ENGINE], app[SESSION_FACTORY] = db, db.engine, db.session_factory
    metrics.setup(app)
    app.cleanup_ctx.append(_database)
    app.on_response_prepare.append(security_headers)
    app.add_routes(health.routes)
    app.add_routes(accounts_api.routes)
    realtime.setup(app)
    app[COMMERCE] = commerce.install(app, settings, db, app[HUB], app[METRICS])
    draws.setup(app)
    media.setup(app)
    pages.setup(app)
    return app
