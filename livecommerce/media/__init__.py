"""The media plane: WHIP ingest, WHEP playback, forwarding without re-encoding, keyframe relay,
stream sessions, LL-HLS, and with REDIS_URL the cluster (stream registry, relays between
nodes). `install(...)` creates the node's MediaNode, adds its routes, its snapshot part and its
shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from livecommerce.appkeys import METRICS
from livecommerce.auth import Principal
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.errors import AppError
from livecommerce.http import file_id, int_param, json_response
from livecommerce.media import aiortc_internals, llhls, signalling, whep, whip
from livecommerce.media.broadcasts import Broadcasts
from livecommerce.media.cluster import Cluster
from livecommerce.media.hls import Hls
from livecommerce.media.node import MediaNode
from livecommerce.media.recording import Recordings
from livecommerce.media.recordings_api import RecordingsApi
from livecommerce.media.storage import storage_for
from livecommerce.realtime.hub import Hub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def stream_state(node: MediaNode, hls: Hls, room_id: int) -> dict[str, object]:
    """The room's stream as this node sees it: its own copy when it has one (with this node's
    viewers), else the cluster's registry entry, else offline."""
    playlist = f"/hls/{room_id}/index.m3u8"
    stream = node.streams.get(room_id)
    if stream is not None:
        output = hls.outputs.get(room_id)
        made_here = output is not None and output.stream is stream
        # a broadcast carried on from another node knows where its HLS is made (no registry read
        # on every join)
        has_hls = made_here or stream.hls_elsewhere is not None
        return {**stream.summary(), "hls_url": playlist if has_hls else None}
    offline: dict[str, object] = {"room_id": room_id, "state": "offline", "node": node.node_id}
    if node.cluster is None:
        return offline
    try:
        entry = await node.cluster.origin(room_id)
    except AppError:
        return {**offline, "state": "unknown", "registry": "unreachable"}
    if entry is None:
        return offline
    return {
        "room_id": room_id,
        "stream_session_id": entry.session_id,
        "state": entry.state,
        "video_codec": _codec_name(entry.codecs.get("video")),
        "audio_codec": _codec_name(entry.codecs.get("audio")),
        "origin": entry.node,
        "node": node.node_id,
        "relayed_from": None,
        "viewers": 0,
        "relays": 0,
        "started_at": entry.started_at,
        "hls_url": playlist if entry.hls else None,
    }


def _codec_name(codec: dict[str, object] | None) -> str | None:
    return None if codec is None else str(codec["mimeType"]).split("/", 1)[1]


async def stream_status(request: web.Request, node: MediaNode, hls: Hls) -> web.Response:
    """Whether a room is live, which node is its origin, codecs, this node's viewer count and its
    HLS playlist."""
    return json_response(await stream_state(node, hls, int_param(request, "room_id")))


def hls_anywhere(
    handler: Callable[[web.Request, MediaNode], Awaitable[web.Response]], node: MediaNode, hls: Hls
) -> Handler:
    """An HLS request on a node that does not make the room's HLS goes to the node that does
    (the one the broadcast started on): a 307 that players and CDNs follow."""

    async def handle(request: web.Request) -> web.StreamResponse:
        room_id = file_id(request, "room_id")
        if room_id not in hls.outputs:
            there = await node.hls_elsewhere(room_id)
            if there is not None:
                return web.Response(status=307, headers={"Location": there + request.path_qs})
        return await handler(request, node)

    return handle


def _bound(handler: Callable[..., Awaitable[web.StreamResponse]], *services: Any) -> Handler:
    """A request handler that is also handed the services it works with."""

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request, *services)

    return handle


def install(app: web.Application, settings: Settings, db: Database, hub: Hub) -> MediaNode:
    """This node's streams; every one still running is ended when the app shuts down."""
    cluster = None
    if settings.redis_url:
        cluster = Cluster(
            settings.redis_url, settings.node_id, settings.node_address, relay_fanout=settings.relay_fanout
        )
    layout = llhls.Layout(settings.hls_segment_seconds, settings.hls_part_seconds)
    recordings = Recordings(
        db.session_factory,
        storage_for(settings),
        layout,
        app[METRICS],
        settings.recording_retention_days,
    )
    node = MediaNode(settings, Broadcasts(db.session_factory, hub, settings.node_id), recordings, cluster)
    hls = Hls(layout, settings.hls_window_segments)
    node.broadcast_started.append(hls.attach)
    if settings.recording_enabled:
        hls.listeners.append(recordings.attach)

    async def running(app: web.Application) -> AsyncIterator[None]:
        # at startup, with the event loop running (some aiortc objects look it up when made)
        aiortc_internals.check()
        await node.start()
        retention = asyncio.ensure_future(recordings.keep_expiring())
        yield
        await node.close()
        await recordings.close()
        retention.cancel()

    async def snapshot(room_id: int, who: Principal) -> dict[str, object]:
        return await stream_state(node, hls, room_id)

    hub.snapshot_provider("stream", snapshot)

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
    app.router.add_get("/hls/{room_id}/index.m3u8", hls_anywhere(hls.playlist, node, hls))
    app.router.add_get("/hls/{room_id}/{session_id}/{name}", hls_anywhere(hls.media, node, hls))
    app.router.add_get("/api/ice-servers", _bound(signalling.ice_servers, settings))
    app.router.add_routes(RecordingsApi(recordings).routes())
    return node
