"""The WHIP endpoint (RFC 9725) of a room and its session resources: a publisher posts an SDP
offer with the room's stream key as a Bearer token and gets the answer; DELETE ends the broadcast.

Rules for a room that already has a stream on this node:
- live with a connected publisher: another publisher is refused with 409 `already_live`, unless
  it holds a key of the room and asks `?takeover=1`; it then replaces the current publisher and
  viewers carry on without reconnecting;
- within the grace period after its publisher dropped: a publisher with a key of the room
  resumes the same broadcast (same stream session, viewers keep their tracks).
A resuming publisher should send the stream's codec; one that cannot starts a new broadcast.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.accounts import room_for_stream_key
from livecommerce.errors import AppError
from livecommerce.http import int_param
from livecommerce.http.throttle import Throttle
from livecommerce.media import broadcasts, offer, peer, signalling
from livecommerce.media.node import MediaNode
from livecommerce.media.receiver import tap
from livecommerce.media.stream import Publisher, PublisherSink, Stream
from livecommerce.realtime import event_types

log = logging.getLogger(__name__)

NO_COMMON_CODEC = "no usable codec in the offer: publish VP8 or H.264 video and/or Opus audio"
WRONG_KEYS_PER_MINUTE = 10
"""Wrong stream keys per client address: guessing a key is refused long before it could work."""


def wrong_keys_throttle() -> Throttle:
    return Throttle("wrong stream keys from this address", WRONG_KEYS_PER_MINUTE)


async def post(
    request: web.Request, node: MediaNode, sessions: async_sessionmaker[AsyncSession], wrong_keys: Throttle
) -> web.Response:
    room_id = int_param(request, "room_id")
    offer.check_content_type(request.content_type)
    key = signalling.bearer(request)
    if key is None:
        raise AppError("unauthorized", "send the room's stream key as `Authorization: Bearer <key>`")
    wrong_keys.guard(request.remote)
    async with sessions() as session:
        stream_key = await room_for_stream_key(session, key)
    if stream_key is None or stream_key.room_id != room_id:
        wrong_keys.failed(request.remote)
        raise AppError("invalid_stream_key", "this stream key is not valid for this room")
    text, kinds = offer.parse_offer(await request.read(), sending=True)
    takeover = request.query.get("takeover", "") in ("1", "true", "yes")

    async with node.lock(room_id):
        stream = node.streams.get(room_id)
        if stream is not None and stream.publisher is not None and not takeover:
            raise AppError(
                "already_live",
                "this room is live from another publisher; the key holder may take over with ?takeover=1",
            )
        publisher = await _negotiate(node, text, kinds, stream, stream_key.id)
        try:
            if stream is not None and not offer.same_codecs(stream.codecs, publisher.codecs):
                await stream.end("replaced")
                stream = None
            stream = await _attach(request, node, stream, publisher)
        except BaseException:
            await publisher.pc.close()
            raise
    location = f"/api/rooms/{room_id}/whip/{publisher.id}"
    return signalling.created(publisher.pc.localDescription.sdp, location, node.settings.ice_servers)


async def _negotiate(
    node: MediaNode, text: str, kinds: list[str], stream: Stream | None, stream_key_id: int
) -> Publisher:
    prefer = stream.codecs if stream is not None else {}
    sections = [
        peer.Section(kind, "recvonly", offer.publish_preferences(kind, prefer.get(kind))) for kind in kinds
    ]
    pc, transceivers = await peer.answer(node.settings, text, sections, no_common_codec=NO_COMMON_CODEC)
    codecs = {}
    for transceiver in transceivers:
        codec = offer.media_codec(transceiver._codecs)
        if codec is not None:
            codecs[transceiver.kind] = codec
    publisher = Publisher(pc=pc, stream_key_id=stream_key_id, codecs=codecs)
    publisher.receivers = {transceiver.kind: transceiver.receiver for transceiver in transceivers}
    return publisher


async def _attach(
    request: web.Request, node: MediaNode, stream: Stream | None, publisher: Publisher
) -> Stream:
    starting = stream is None
    if stream is None:
        stream = node.new_stream(int_param(request, "room_id"), publisher.codecs)
    for kind, receiver in publisher.receivers.items():
        publisher.receivers[kind] = tap(receiver, PublisherSink(stream, publisher, kind))

    @publisher.pc.on("connectionstatechange")
    def _state() -> None:
        if publisher.pc.connectionState in ("failed", "closed"):
            stream.publisher_lost(publisher, publisher.pc.connectionState)

    stream.attach(publisher)
    node.add_publisher(stream, publisher)
    if starting:
        names = stream.codec_names
        broadcast = broadcasts.Broadcast(
            room_id=stream.room_id,
            stream_key_id=publisher.stream_key_id,
            publisher_address=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
            video_codec=names.get("video"),
            audio_codec=names.get("audio"),
        )
        try:
            stream.session_id, stream.started_at = await node.broadcasts.record_start(broadcast)
        except BaseException:
            await stream.end("failed")
            raise
        live = {
            "stream_session_id": stream.session_id,
            **{f"{kind}_codec": name for kind, name in names.items()},
        }
        await node.broadcasts.announce(stream.room_id, event_types.STREAM_LIVE, live)
    return stream


async def delete(request: web.Request, node: MediaNode) -> web.Response:
    entry = node.publishers.pop(request.match_info["resource_id"], None)
    if entry is None:
        raise AppError("not_found", "no such WHIP session (it may have ended already)")
    stream, publisher = entry
    if stream.is_publisher(publisher):
        await stream.end("publisher_left")
    else:
        await publisher.pc.close()
    return web.Response(status=200)
