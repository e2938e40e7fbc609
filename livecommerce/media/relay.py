"""Node to node: an edge pulls a room's stream from its origin (or from another relay) over WHEP,
as one more viewer of that node, with the cluster's relay credential.

Pulling over WHEP reuses everything a viewer already has: ICE and DTLS-SRTP, NACK and RTX repair
on each hop, PLI for keyframes, and the origin's lean sender, so a relay costs its source one
viewer. The pulled receivers are tapped like a publisher's: the edge's own `Stream` forwards the
frames to its viewers exactly as the origin forwards the publisher's.
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import orjson
from aiortc import RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.media import ice, offer
from livecommerce.media.aiortc_internals import keep_consent_while_media_flows, tap
from livecommerce.media.cluster import Source
from livecommerce.media.stream import Publisher, PublisherSink, Stream, resource_id

SIGNALLING_TIMEOUT = 10.0  # seconds for the source to answer the relay's offer


def relay_token(secret_key: str) -> str:
    """The bearer every node of a cluster (sharing SECRET_KEY) shows when it pulls as a relay."""
    return hmac.new(secret_key.encode(), b"livecommerce media relay", hashlib.sha256).hexdigest()


def is_relay_request(authorization: str | None, secret_key: str) -> bool:
    if not authorization:
        return False
    return hmac.compare_digest(authorization.encode(), relay_token(secret_key).encode())


async def pull(
    settings: Settings,
    http: aiohttp.ClientSession,
    source: Source,
    stream: Stream,
    codecs: dict[str, RTCRtpCodecParameters],
) -> Publisher:
    """A peer connection receiving the room's stream from `source`, tapped into `stream`;
    `unavailable` (503) with the reason when the source cannot be reached or refuses."""
    pc = ice.server_peer_connection()
    publisher = Publisher(pc=pc, stream_key_id=None, codecs=codecs, id=resource_id(settings.node_id))
    publisher.relay_of = source.node
    try:
        for kind, codec in codecs.items():
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(offer.viewer_preferences(codec))
            publisher.receivers[kind] = tap(transceiver.receiver, PublisherSink(stream, publisher, kind))
        ice.pin_gathering(pc, settings.rtc_host_addresses, settings.rtc_announced_addresses)
        keep_consent_while_media_flows(pc)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await _post_offer(http, source, stream.room_id, pc.localDescription.sdp, settings.secret_key)
        await pc.setRemoteDescription(
            RTCSessionDescription(
                sdp=ice.scope_candidates(answer, settings.rtc_host_addresses), type="answer"
            )
        )
    except BaseException:
        await pc.close()
        raise
    return publisher


async def _post_offer(
    http: aiohttp.ClientSession, source: Source, room_id: int, sdp: str, secret: str
) -> str:
    url = f"{source.url}/api/rooms/{room_id}/whep"
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {relay_token(secret)}"}
    try:
        async with http.post(
            url,
            data=sdp,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=SIGNALLING_TIMEOUT),
        ) as response:
            body = await response.text()
            if response.status == 201:
                return body
            reason = _error_message(body) or f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = f"{type(exc).__name__} {exc}".strip()
    raise AppError("unavailable", f"cannot pull this stream from node {source.node} ({source.url}): {reason}")


def _error_message(body: str) -> str:
    try:
        return str(orjson.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""
