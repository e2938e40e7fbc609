"""Request counts and latencies per route, in the app's Prometheus registry."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import Counter, Histogram

from livecommerce.appkeys import METRICS
from livecommerce.http import Handler

REQUESTS = web.AppKey("http_requests", Counter)
LATENCY = web.AppKey("http_latency", Histogram)


def setup(app: web.Application) -> None:
    registry = app[METRICS]
    app[REQUESTS] = Counter(
        "livecommerce_http_requests",
        "HTTP requests answered",
        ["method", "route", "status"],
        registry=registry,
    )
    app[LATENCY] = Histogram(
        "livecommerce_http_request_seconds", "Time to answer an HTTP request", ["route"], registry=registry
    )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    # label by route pattern, not path, so ids in URLs do not explode the series
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    response = await handler(request)
    if not isinstance(response, web.WebSocketResponse):
        request.app[LATENCY].labels(route).observe(time.perf_counter() - started)
    request.app[REQUESTS].labels(request.method, route, str(response.status)).inc()
    return response
