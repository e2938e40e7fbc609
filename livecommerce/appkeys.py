"""Typed keys for the components that the app factory creates and hands to request handlers."""

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

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSION_FACTORY = web.AppKey("sessions", async_sessionmaker[AsyncSession])
TOKENS = web.AppKey("tokens", Tokens)
METRICS = web.AppKey("metrics", CollectorRegistry)
COMMERCE: web.AppKey[Commerce] = web.AppKey("commerce")
