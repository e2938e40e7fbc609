"""Request counts and latencies per route, in the app's Prometheus registry."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from livecommerce.http import Handler


class HttpMetrics:
    """The middleware that counts and times every answer, labelled by route pattern."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "livecommerce_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "livecommerce_http_request_seconds",
            "Time to answer an HTTP request",
            ["route"],
            registry=registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        # label by route pattern, not path, so ids in URLs do not explode the series
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        response = await handler(request)
        if not isinstance(response, web.WebSocketResponse):
            self.latency.labels(route).observe(time.perf_counter() - started)
        self.requests.labels(request.method, route, str(response.status)).inc()
        return response
