"""The WHEP endpoint of a room and its session resources: a viewer posts an SDP offer (recvonly
audio and video) and gets an answer whose tracks carry the publisher's own encoded media; DELETE
leaves. Viewers are admitted while the room is live on this node (or within its grace period),
up to MAX_VIEWERS_PER_NODE."""

from __future__ import annotations

from aiohttp import web

from livecommerce.errors import AppError
from livecommerce.http import error_response, int_param
from livecommerce.media import offer, peer, signalling
from livecommerce.media.aiortc_internals import lean_sender
from livecommerce.media.node import MediaNode

RETRY_AFTER_SECONDS = 10


async def post(request: web.Request, node: MediaNode) -> web.Response:
    room_id = int_param(request, "room_id")
    offer.check_content_type(request.content_type)
    text, kinds = offer.parse_offer(await request.read(), sending=False)
    if node.at_capacity():
        error = AppError("over_capacity", "this node has as many viewers as it can serve; try again shortly")
        return error_response(error, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    stream = node.streams.get(room_id)
    if stream is None:
        raise AppError("not_live", "this room is not live")

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

    viewer = stream.add_viewer(pc)
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


async def delete(request: web.Request, node: MediaNode) -> web.Response:
    if not node.remove_viewer(request.match_info["resource_id"]):
        raise AppError("not_found", "no such WHEP session (it may have ended already)")
    return web.Response(status=200)
