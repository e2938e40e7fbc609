"""HTTP details shared by the WHIP and WHEP endpoints (RFC 9725 §4): the 201 answer with its
Location, ICE servers as `Link` headers, CORS so that pages on other origins can publish and play,
OPTIONS, and PATCH (trickle ICE and ICE restarts are not supported: 405, the answer already
carries every candidate)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from livecommerce.config import Settings
from livecommerce.errors import AppError

ENDPOINT_PATH = re.compile(r"^/api/(rooms/\d+/wh[ie]p(/[^/]+)?|ice-servers)$")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Post, Retry-After, Allow",
}
ENDPOINT_METHODS = "POST, OPTIONS"
RESOURCE_METHODS = "DELETE, OPTIONS"


def link_headers(ice_servers: list[dict[str, Any]]) -> list[str]:
    """RFC 9725 §4.4: one `Link: <url>; rel="ice-server"` per URL, with TURN credentials."""
    links = []
    for server in ice_servers:
        urls = server["urls"]
        for url in [urls] if isinstance(urls, str) else urls:
            link = f'<{url}>; rel="ice-server"'
            if server.get("username"):
                link += f'; username="{server["username"]}"; credential="{server.get("credential", "")}"'
                link += '; credential-type="password"'
            links.append(link)
    return links


def created(answer: str, location: str, ice_servers: list[dict[str, Any]]) -> web.Response:
    response = web.Response(status=201, body=answer.encode(), headers={"Content-Type": "application/sdp"})
    response.headers["Location"] = location
    response.headers["ETag"] = f'"{location.rsplit("/", 1)[1]}"'
    for link in link_headers(ice_servers):
        response.headers.add("Link", link)
    return response


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def options_endpoint(request: web.Request, settings: Settings) -> web.Response:
    response = web.Response(status=204, headers={"Allow": ENDPOINT_METHODS, "Accept-Post": "application/sdp"})
    response.headers["Access-Control-Allow-Methods"] = ENDPOINT_METHODS
    for link in link_headers(settings.ice_servers):
        response.headers.add("Link", link)
    return response


async def options_resource(request: web.Request) -> web.Response:
    return web.Response(
        status=204, headers={"Allow": RESOURCE_METHODS, "Access-Control-Allow-Methods": RESOURCE_METHODS}
    )


async def patch_resource(request: web.Request) -> web.Response:
    raise AppError(
        "method_not_allowed",
        "trickle ICE and ICE restarts are not supported: the answer carries every candidate; "
        "publish or play again with a new POST",
    )


async def ice_servers(request: web.Request, settings: Settings) -> web.Response:
    """The STUN/TURN servers a browser should use (ICE_SERVERS), as RTCIceServer objects."""
    return web.json_response({"ice_servers": settings.ice_servers})


async def cors(request: web.Request, response: web.StreamResponse) -> None:
    if ENDPOINT_PATH.match(request.path):
        for name, value in CORS_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.status == 405:
            response.headers.setdefault("Allow", RESOURCE_METHODS)
