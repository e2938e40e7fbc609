"""The media plane: WHIP ingest, WHEP playback, forwarding without re-encoding, keyframe relay,
stream sessions, LL-HLS. `install(...)` creates the node's MediaNode, adds its routes and its
shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from livecommerce.appkeys import METRICS
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.http import int_param, json_response
from livecommerce.media import aiortc_internals, llhls, signalling, whep, whip
from livecommerce.media.broadcasts import Broadcasts
from livecommerce.media.hls import Hls
from livecommerce.media.node import MediaNode
from livecommerce.media.recording import Recordings
from livecommerce.media.recordings_api import RecordingsApi
from livecommerce.media.storage import storage_for
from livecommerce.realtime.hub import Hub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def stream_status(request: web.Request, node: MediaNode, hls: Hls) -> web.Response:
    """Whether a room is live on this node, with codecs, viewer count and HLS playlist."""
    room_id = int_param(request, "room_id")
    stream = node.streams.get(room_id)
    if stream is None:
        return json_response({"room_id": room_id, "state": "offline"})
    output = hls.outputs.get(room_id)
    playlist = f"/hls/{room_id}/index.m3u8" if output is not None and output.stream is stream else None
    return json_response({**stream.summary(), "hls_url": playlist})


def _bound(handler: Callable[..., Awaitable[web.StreamResponse]], *services: Any) -> Handler:
    """A request handler that is also handed the services it works with."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request, *services)

    return handle


def install(app: web.Application, settings: Settings, db: Database, hub: Hub) -> MediaNode:
    """This node's streams; every one still running is ended when the app shuts down."""
    layout = llhls.Layout(settings.hls_segment_seconds, settings.hls_part_seconds)
    recordings = Recordings(
        db.session_factory,
        storage_for(settings),
        layout,
        app[METRICS],
        settings.recording_retention_days,
    )
    node = MediaNode(settings, Broadcasts(db.session_factory, hub, settings.node_id), recordings)
    hls = Hls(layout, settings.hls_window_segments)
    node.stream_started.append(hls.attach)
    if settings.recording_enabled:
        hls.listeners.append(recordings.attach)

    async def running(app: web.Application) -> AsyncIterator[None]:
        # at startup, with the event loop running (some aiortc objects look it up when made)
        aiortc_internals.check()
        retention = asyncio.ensure_future(recordings.keep_expiring())
        yield
        await node.close()
        await recordings.close()
        retention.cancel()

    app.cleanup_ctx.append(running)
    app.on_response_prepare.append(signalling.cors)
    publish = {
        "post": _bound(whip.post, node, whip.wrong_keys_throttle()),
        "delete": _bound(whip.delete, node),
    }
    play = {"post": _bound(whep.post, node), "delete": _bound(whep.delete, node)}
    for kind, handlers in (("whip", publish), ("whep", play)):
        endpoint = f"/api/rooms/{{room_id}}/{kind}"
        resource = f"{endpoint}/{{resource_id}}"
        app.router.add_post(endpoint, handlers["post"])
        app.router.add_route("OPTIONS", endpoint, _bound(signalling.options_endpoint, settings))
        app.router.add_delete(resource, handlers["delete"])
        app.router.add_patch(resource, signalling.patch_resource)
        app.router.add_route("OPTIONS", resource, signalling.options_resource)
    app.router.add_get("/api/rooms/{room_id}/stream", _bound(stream_status, node, hls))
    app.router.add_get("/hls/{room_id}/index.m3u8", _bound(hls.playlist, node))
    app.router.add_get("/hls/{room_id}/{session_id}/{name}", _bound(hls.media, node))
    app.router.add_get("/api/ice-servers", _bound(signalling.ice_servers, settings))
    app.router.add_routes(RecordingsApi(recordings).routes())
    return node
