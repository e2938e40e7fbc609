"""Liveness, readiness (database reachable, and what else the node depends on) and Prometheus
metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from livecommerce.config import Settings
from livecommerce.http import json_response
from livecommerce.web.metrics import require_scraper


class Health:
    """`/healthz`, `/readyz` and `/metrics` for this node."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        registry: CollectorRegistry,
        readiness: dict[str, Callable[[], str]],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.readiness = readiness  # name → "ok", "not used", or what is wrong

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
        parts = {name: state() for name, state in self.readiness.items()}
        # a node whose other parts fail still serves what it holds (its streams), so it stays in
        # the load balancer: "degraded", with the reason
        degraded = any(state not in ("ok", "not used") for state in parts.values())
        return json_response({"status": "degraded" if degraded else "ready", "database": "ok", **parts})

    async def metrics(self, request: web.Request) -> web.Response:
        require_scraper(request, self.settings)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
