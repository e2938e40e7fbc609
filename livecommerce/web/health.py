"""Liveness, readiness (database reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.config import Settings
from livecommerce.http import json_response
from livecommerce.web.metrics import require_scraper


class Health:
    """`/healthz`, `/readyz` and `/metrics` for this node."""

    def __init__(self, settings: Settings, engine: AsyncEngine, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok", "node": self.settings.node_id})

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except (TimeoutError, OSError, Exception) as exc:  # any failure means "not ready", with the reason
            return json_response(
                {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status=503
            )
        return json_response({"status": "ready", "database": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        require_scraper(request, self.settings)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
