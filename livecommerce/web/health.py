"""Liveness, readiness (database reachable) and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from livecommerce.appkeys import ENGINE, METRICS, SETTINGS
from livecommerce.http import json_response
from livecommerce.web.metrics import require_scraper

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "node": request.app[SETTINGS].node_id})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        async with asyncio.timeout(2):
            async with request.app[ENGINE].connect() as connection:
                await connection.execute(text("SELECT 1"))
    except (TimeoutError, OSError, Exception) as exc:  # any failure means "not ready", with the reason
        return json_response(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}, status=503
        )
    return json_response({"status": "ready", "database": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    require_scraper(request)
    body = generate_latest(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
