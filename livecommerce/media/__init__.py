"""The media plane: WHIP ingest, WHEP playback, forwarding without re-encoding, keyframe relay,
stream sessions. `setup(app)` adds its routes, the node's MediaNode and its shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce.appkeys import SETTINGS
from livecommerce.http import int_param, json_response
from livecommerce.http.throttle import Throttle
from livecommerce.media import signalling, whep, whip
from livecommerce.media.node import MEDIA, MediaNode


async def stream_status(request: web.Request) -> web.Response:
    """Whether a room is live on this node, with codecs and viewer count."""
    room_id = int_param(request, "room_id")
    stream = request.app[MEDIA].streams.get(room_id)
    if stream is None:
        return json_response({"room_id": room_id, "state": "offline"})
    return json_response(stream.summary())


async def _media_node(app: web.Application) -> AsyncIterator[None]:
    node = MediaNode(app, app[SETTINGS])
    app[MEDIA] = node
    yield
    await node.close()


def setup(app: web.Application) -> None:
    app[whip.WRONG_KEYS] = Throttle("wrong stream keys from this address", whip.WRONG_KEYS_PER_MINUTE)
    app.cleanup_ctx.append(_media_node)
    app.on_response_prepare.append(signalling.cors)
    for kind, module in (("whip", whip), ("whep", whep)):
        endpoint = f"/api/rooms/{{room_id}}/{kind}"
        resource = f"{endpoint}/{{resource_id}}"
        app.router.add_post(endpoint, module.post)
        app.router.add_route("OPTIONS", endpoint, signalling.options_endpoint)
        app.router.add_delete(resource, module.delete)
        app.router.add_patch(resource, signalling.patch_resource)
        app.router.add_route("OPTIONS", resource, signalling.options_resource)
    app.router.add_get("/api/rooms/{room_id}/stream", stream_status)
    app.router.add_get("/api/ice-servers", signalling.ice_servers)
