"""HTTP surface: health and metrics, the accounts API, the pages and the replay. `install(...)` adds them;
the request metrics middleware (`metrics.HttpMetrics`) is set up with the app itself."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.http.identity import Identity
from livecommerce.media.recording import Recordings
from livecommerce.web import pages
from livecommerce.web.accounts_api import AccountsApi
from livecommerce.web.health import Health
from livecommerce.web.replay import Replay


def install(
    app: web.Application,
    settings: Settings,
    db: Database,
    metrics: CollectorRegistry,
    identity: Identity,
    readiness: dict[str, Callable[[], str]],
    recordings: Recordings,
) -> None:
    app.router.add_routes(Health(settings, db.engine, metrics, readiness).routes())
    app.router.add_routes(AccountsApi(identity, db.session_factory, settings).routes())
    pages.install(app, settings, db.session_factory)
    app.router.add_routes(Replay(db.session_factory, recordings, settings.payments_test_mode).routes())
