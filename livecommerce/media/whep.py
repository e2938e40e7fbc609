"""The WHEP endpoint of a room and its session resources: a viewer posts an SDP offer (recvonly
audio and video) and gets an answer whose tracks carry the publisher's own encoded media; DELETE
leaves. Viewers are admitted while the room is live (or within its grace period), up to
MAX_VIEWERS_PER_NODE: on a node that does not hold the publisher, the node relays the stream
from the cluster. A full node redirects (307, RFC 9725 §4.5) to a node with room; 503 with
Retry-After only when every node is full. Other nodes pulling a relay present the cluster's
relay credential and are not counted against capacity (the relay tree bounds them)."""

from __future__ import annotations

from aiohttp import web

from livecommerce.errors import AppError
from livecommerce.http import error_response, int_param
from livecommerce.media import offer, peer, relay, signalling
from livecommerce.media.aiortc_internals import lean_sender
from livecommerce.media.node import MediaNode

RETRY_AFTER_SECONDS = 10


async def post(request: web.Request, node: MediaNode) -> web.Response:
    room_id = int_param(request, "room_id")
    offer.check_content_type(request.content_type)
    text, kinds = offer.parse_offer(await request.read(), sending=False)
    is_relay = relay.is_relay_request(signalling.bearer(request), node.settings.secret_key)
    if node.at_capacity() and not is_relay:
        return await _elsewhere(request, node, room_id)
    stream = node.streams.get(room_id)
    if stream is None:
        if is_relay:  # a relay pulls only from a node that holds the stream
            raise AppError("not_live", "this node does not carry this room's stream")
        stream = await node.edge_stream(room_id)

    sections = [
        peer.Section(kind, "sendonly", offer.viewer_preferences(stream.codecs[kind]))
        if kind in stream.codecs
        else peer.Section(kind, "inactive", [])
        for kind in kinds
    ]
    names = " and ".join(f"{kind} {name}" for kind, name in stream.codec_names.items())
    pc, transceivers = await peer.answer(
        node.settings,
        text,
        sections,
        no_common_codec=f"this stream is {names}; the offer cannot receive it",
    )
    if stream.state == "ended":
        await pc.close()
        raise AppError("not_live", "the stream ended")

    viewer = stream.add_viewer(pc, relay=is_relay)
    node.add_viewer(stream, viewer)
    for transceiver in transceivers:
        leg = viewer.legs.get(transceiver.kind)
        if leg is not None:
            lean_sender(transceiver.sender, leg)

    @pc.on("connectionstatechange")
    def _state() -> None:
        if pc.connectionState in ("failed", "closed"):
            node.remove_viewer(viewer.id)

    location = f"/api/rooms/{room_id}/whep/{viewer.id}"
    return signalling.created(pc.localDescription.sdp, location, node.settings.ice_servers)


async def _elsewhere(request: web.Request, node: MediaNode, room_id: int) -> web.Response:
    """This node is full: send the viewer to a node with room, or ask it to come back later."""
    target = await node.node_with_room(room_id)
    if target is not None:
        location = f"{target.url}/api/rooms/{room_id}/whep"
        return web.Response(status=307, headers={"Location": location})
    full = "every node" if node.cluster is not None else "this node"
    error = AppError("over_capacity", f"{full} has as many viewers as it can serve; try again shortly")
    return error_response(error, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def delete(request: web.Request, node: MediaNode) -> web.Response:
    if not node.remove_viewer(request.match_info["resource_id"]):
        return await node.forward(request)
    return web.Response(status=200)
