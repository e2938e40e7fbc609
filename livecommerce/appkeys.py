"""Typed keys for the components that the app factory creates and hands to request handlers."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Tokens
from livecommerce.config import Settings
from livecommerce.db.engine import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSION_FACTORY = web.AppKey("sessions", async_sessionmaker[AsyncSession])
TOKENS = web.AppKey("tokens", Tokens)
METRICS = web.AppKey("metrics", CollectorRegistry)
