"""The WHIP endpoint (RFC 9725) of a room and its session resources: a publisher posts an SDP
offer with the room's stream key as a Bearer token and gets the answer; DELETE ends the broadcast.

Rules for a room that already has a stream on this node:
- live with a connected publisher: a publisher with the same stream key (a phone reconnecting
  after its network dropped), or any key of the room while the current publisher sends nothing,
  replaces it at once and viewers carry on without reconnecting; a publisher with another key
  while the current one is live is refused with 409 `already_live`, unless it asks `?takeover=1`;
- within the grace period after its publisher dropped: a publisher with a key of the room
  resumes the same broadcast (same stream session, viewers keep their tracks).
A resuming publisher should send the stream's codec; one that cannot starts a new broadcast.

In a cluster the same rules hold across nodes: the registry says which node holds the room's
publisher, and a publisher that comes back to another node within the grace period (or takes
over) carries the same broadcast on there; the old origin becomes an edge of the new one.
"""

from __future__ import annotations

import logging

from aiohttp import web

from livecommerce.errors import AppError
from livecommerce.http import error_response, int_param
from livecommerce.http.throttle import Throttle
from livecommerce.media import broadcasts, offer, peer, signalling
from livecommerce.media.aiortc_internals import negotiated_codecs, tap
from livecommerce.media.cluster import OriginEntry
from livecommerce.media.node import MediaNode, parse_time
from livecommerce.media.stream import Publisher, PublisherSink, Stream, resource_id

log = logging.getLogger(__name__)

NO_COMMON_CODEC = "no usable codec in the offer: publish VP8 or H.264 video and/or Opus audio"
WRONG_KEYS_PER_MINUTE = 10
"""Wrong stream keys per client address: guessing a key is refused long before it could work."""


def wrong_keys_throttle() -> Throttle:
    return Throttle("wrong stream keys from this address", WRONG_KEYS_PER_MINUTE)


async def post(request: web.Request, node: MediaNode, wrong_keys: Throttle) -> web.Response:
    room_id = int_param(request, "room_id")
    offer.check_content_type(request.content_type)
    key = signalling.bearer(request)
    if key is None:
        return _unauthorized(
            AppError("unauthorized", "send the room's stream key as `Authorization: Bearer <key>`"), ""
        )
    wrong_keys.guard(request.remote)
    key_id = await node.broadcasts.stream_key_id(key, room_id)
    if key_id is None:
        wrong_keys.failed(request.remote)
        return _unauthorized(
            AppError("invalid_stream_key", "this stream key is not valid for this room"), "invalid_token"
        )
    text, kinds = offer.parse_offer(await request.read(), sending=True)
    takeover = request.query.get("takeover", "") in ("1", "true", "yes")

    async with node.lock(room_id):
        stream = node.streams.get(room_id)
        elsewhere = await node.origin_elsewhere(room_id) if stream is None or not stream.is_origin else None
        live_here = stream is not None and stream.is_origin and not stream.replaceable_by(key_id)
        live_elsewhere = elsewhere is not None and not elsewhere.replaceable_by(key_id)
        if not takeover and (live_here or live_elsewhere):
            raise AppError(
                "already_live",
                "this room is live from another publisher; the key holder may take over with ?takeover=1",
            )
        publisher = await _negotiate(node, text, kinds, stream, key_id)
        try:
            if stream is not None and not offer.same_codecs(stream.codecs, publisher.codecs):
                await stream.end("replaced")
                stream = None
            stream = await _attach(request, node, stream, publisher, elsewhere)
        except BaseException:
            await publisher.pc.close()
            raise
    location = f"/api/rooms/{room_id}/whip/{publisher.id}"
    return signalling.created(publisher.pc.localDescription.sdp, location, node.settings.ice_servers)


def _unauthorized(error: AppError, bearer_error: str) -> web.Response:
    """A 401 that names its scheme (RFC 9110 §11.6.1; the Bearer error code of RFC 6750 §3)."""
    challenge = 'Bearer realm="whip"' + (f', error="{bearer_error}"' if bearer_error else "")
    return error_response(error, headers={"WWW-Authenticate": challenge})


async def _negotiate(
    node: MediaNode, text: str, kinds: list[str], stream: Stream | None, stream_key_id: int
) -> Publisher:
    prefer = stream.codecs if stream is not None else {}
    sections = [
        peer.Section(
            kind,
            "recvonly",
            offer.publish_preferences(kind, prefer.get(kind), offer.offered_codecs(text, kind)),
        )
        for kind in kinds
    ]
    pc, transceivers = await peer.answer(node.settings, text, sections, no_common_codec=NO_COMMON_CODEC)
    codecs = {}
    for transceiver in transceivers:
        codec = offer.media_codec(negotiated_codecs(transceiver))
        if codec is not None:
            codecs[transceiver.kind] = codec
    publisher = Publisher(pc=pc, stream_key_id=stream_key_id, codecs=codecs, id=resource_id(node.node_id))
    publisher.receivers = {transceiver.kind: transceiver.receiver for transceiver in transceivers}
    return publisher


async def _attach(
    request: web.Request,
    node: MediaNode,
    stream: Stream | None,
    publisher: Publisher,
    elsewhere: OriginEntry | None,
) -> Stream:
    """Make the publisher the stream's current one (a new stream if none). A new broadcast is
    recorded and announced when its first frame arrives (`Stream.media_started`), not here: a
    publisher whose DTLS or ICE fails never opens one. A broadcast that another node recorded (the
    publisher moved here, or this node relayed it) carries on with the same stream session."""
    room_id = int_param(request, "room_id")
    broadcast = broadcasts.Broadcast(
        room_id=room_id,
        stream_key_id=publisher.stream_key_id,
        publisher_address=request.remote or "",
        user_agent=request.headers.get("User-Agent", ""),
    )
    if stream is None:
        stream = node.new_stream(room_id, publisher.codecs, broadcast)
    elif not stream.is_origin:
        stream.become_origin(broadcast)
    same_broadcast = elsewhere is not None and offer.same_codecs(
        elsewhere.codec_parameters(), publisher.codecs
    )
    if same_broadcast and stream.session_id is None:
        stream.adopt(elsewhere.session_id, parse_time(elsewhere.started_at))
        stream.hls_elsewhere = elsewhere.hls
    if stream.session_id is None and not stream.outputs:
        node.start_broadcast(stream)
    for kind, receiver in publisher.receivers.items():
        publisher.receivers[kind] = tap(receiver, PublisherSink(stream, publisher, kind))

    @publisher.pc.on("connectionstatechange")
    def _state() -> None:
        if publisher.pc.connectionState in ("failed", "closed"):
            stream.publisher_lost(publisher, publisher.pc.connectionState)

    stream.attach(publisher)
    node.add_publisher(stream, publisher)
    await node.claim_origin(stream)
    return stream


async def delete(request: web.Request, node: MediaNode) -> web.Response:
    entry = node.publishers.pop(request.match_info["resource_id"], None)
    if entry is None:
        return await node.forward(request)
    stream, publisher = entry
    if stream.is_publisher(publisher):
        await stream.end("publisher_left")
    else:
        await publisher.pc.close()
    return web.Response(status=200)
