"""Request counts and latencies per route, in the app's Prometheus registry, and who may read them."""

from __future__ import annotations

import hmac
import ipaddress
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from livecommerce.config import Settings
from livecommerce.errors import AppError
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


def require_scraper(request: web.Request, settings: Settings) -> None:
    """Refuse `/metrics` unless the caller sends METRICS_TOKEN or connects from METRICS_ALLOW.

    A request relayed by a proxy (it carries a forwarding header) never counts as coming from
    the proxy's own address, so a proxy on loopback does not make the metrics public.
    """
    header = request.headers.get("Authorization", "")
    if settings.metrics_token and header.startswith("Bearer "):
        if hmac.compare_digest(
            header.removeprefix("Bearer ").strip().encode(), settings.metrics_token.encode()
        ):
            return
    elif not ("X-Forwarded-For" in request.headers or "Forwarded" in request.headers):
        try:
            address = ipaddress.ip_address(request.remote or "")
        except ValueError:
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is not None and any(
            address in ipaddress.ip_network(network, strict=False) for network in settings.metrics_allow
        ):
            return
    raise AppError("forbidden", "metrics are readable from METRICS_ALLOW addresses or with METRICS_TOKEN")
