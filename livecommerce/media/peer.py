"""Answering an offer: a server peer connection with the planned transceivers and codecs, pinned
to the configured ICE addresses, answering as the DTLS server, keeping ICE consent while the
peer's media flows, with errors mapped to typed ones."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.exceptions import InternalError, InvalidAccessError, InvalidStateError, OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.media import ice
from livecommerce.media.aiortc_internals import keep_consent_while_media_flows


@dataclass(frozen=True)
class Section:
    """One media section of the offer as the server will answer it."""

    kind: str
    direction: str
    codecs: list[RTCRtpCodecCapability]


async def answer(
    settings: Settings, offer: str, sections: list[Section], *, no_common_codec: str
) -> tuple[RTCPeerConnection, list[RTCRtpTransceiver]]:
    """Return the connection (local answer set) and the transceivers in section order."""
    pc = ice.server_peer_connection()
    try:
        transceivers = []
        for section in sections:
            transceiver = pc.addTransceiver(section.kind, direction=section.direction)
            if section.codecs:
                transceiver.setCodecPreferences(section.codecs)
            transceivers.append(transceiver)
        ice.pin_gathering(pc, settings.rtc_host_addresses, settings.rtc_announced_addresses)
        keep_consent_while_media_flows(pc)
        text = ice.scope_candidates(offer, settings.rtc_host_addresses)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
        except OperationError:
            raise AppError("not_acceptable", no_common_codec) from None
        except (ValueError, InvalidAccessError, InvalidStateError, InternalError) as exc:
            raise AppError("invalid_sdp", f"the offer was refused: {exc}") from None
        for transceiver in pc.getTransceivers():
            if transceiver not in transceivers:
                # a section the server did not plan for (aiortc adds a transceiver for every
                # audio or video section): answer it inactive, or aiortc would start a receiver
                # and decoder thread for media that nothing reads
                transceiver.direction = "inactive"
        ice.choose_dtls_role(pc, text)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc, transceivers
    except BaseException:
        await pc.close()
        raise
