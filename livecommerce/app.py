"""The app factory: builds the aiohttp application and its components from one Settings object."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce import media
from livecommerce.appkeys import ENGINE, METRICS, SESSION_FACTORY, SETTINGS, TOKENS
from livecommerce.auth import Tokens
from livecommerce.commerce import setup as commerce
from livecommerce.config import Settings
from livecommerce.db.engine import make_engine, make_sessionmaker
from livecommerce.draws import api as draws
from livecommerce.http import error_middleware, security_headers
from livecommerce.http.identity import REVOCATIONS, Revocations, identity_middleware
from livecommerce.realtime import setup as realtime
from livecommerce.web import accounts_api, health, metrics, pages

log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    app[ENGINE] = engine
    app[SESSION_FACTORY] = make_sessionmaker(engine)
    yield
    await engine.dispose()


def create_app(settings: Settings) -> web.Application:
    """Every component is created here and reached through the app's typed keys."""
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI starts the embedded database)")
    settings.ensure_secret_key()
    # metrics outermost, so it counts the JSON error answers that error_middleware makes
    app = web.Application(
        middlewares=[metrics.metrics_middleware, error_middleware, identity_middleware],
        client_max_size=settings.max_request_bytes,
    )
    app[SETTINGS] = settings
    app[TOKENS] = Tokens(
        settings.secret_key, session_ttl=settings.session_ttl_seconds, guest_ttl=settings.guest_ttl_seconds
    )
    app[REVOCATIONS] = Revocations()
    app[METRICS] = CollectorRegistry()
    metrics.setup(app)
    app.cleanup_ctx.append(_database)
    app.on_response_prepare.append(security_headers)
    app.add_routes(health.routes)
    accounts_api.setup(app)
    realtime.setup(app)
    commerce.setup(app)
    draws.setup(app)
    media.setup(app)
    pages.setup(app)
    return app
