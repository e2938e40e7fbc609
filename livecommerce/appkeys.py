"""Every typed app key, in one place: what the app factory stores for aiohttp's own hooks and for
tests to inspect a running app. Handlers get their services from the planes' install(), not here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Tokens
from livecommerce.config import Settings
from livecommerce.db.engine import Database

if TYPE_CHECKING:  # the planes sit above this module: their types only, for type checkers
    from livecommerce.commerce import Commerce
    from livecommerce.draws.service import DrawService
    from livecommerce.media.node import MediaNode
    from livecommerce.realtime.hub import Hub

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSION_FACTORY = web.AppKey("sessions", async_sessionmaker[AsyncSession])
TOKENS = web.AppKey("tokens", Tokens)
METRICS = web.AppKey("metrics", CollectorRegistry)
HUB: web.AppKey[Hub] = web.AppKey("hub")
COMMERCE: web.AppKey[Commerce] = web.AppKey("commerce")
MEDIA: web.AppKey[MediaNode] = web.AppKey("media")
DRAWS: web.AppKey[DrawService] = web.AppKey("draws")
