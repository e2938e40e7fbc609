"""SDP offers for WHIP and WHEP: checking what a client sent before any peer connection exists,
and the codecs each side may negotiate (publishers: VP8 or H.264 video, Opus audio; viewers:
exactly the publisher's codecs)."""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import SessionDescription

from livecommerce.errors import AppError

PUBLISH_MIME_TYPES = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}
MAX_OFFER_BYTES = 64 * 1024


def check_content_type(content_type: str) -> None:
    if content_type != "application/sdp":
        raise AppError("unsupported_media_type", "send the SDP offer as application/sdp")


def parse_offer(body: bytes, *, sending: bool) -> tuple[str, list[str]]:
    """Return the offer text and its media kinds, in order; raise `invalid_sdp` with the reason.

    sending=True for a publisher (its media must be sendonly or sendrecv), False for a viewer
    (recvonly or sendrecv).
    """
    if len(body) > MAX_OFFER_BYTES:
        raise AppError("invalid_sdp", f"the offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise AppError("invalid_sdp", "the offer is not UTF-8 text") from None
    if not text.lstrip().startswith("v=0"):
        raise AppError("invalid_sdp", "an SDP offer starts with v=0")
    try:
        description = SessionDescription.parse(text)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise AppError("invalid_sdp", f"the offer could not be parsed: {exc or type(exc).__name__}") from None
    wanted = ("sendonly", "sendrecv") if sending else ("recvonly", "sendrecv")
    kinds = []
    for media in description.media:
        if media.kind not in ("audio", "video") or media.port == 0:
            continue
        if (media.direction or "sendrecv") not in wanted:
            continue
        if not media.ice.usernameFragment or not media.ice.password:
            raise AppError("invalid_sdp", f"the {media.kind} section has no ICE credentials")
        if not media.dtls or not media.dtls.fingerprints:
            raise AppError("invalid_sdp", f"the {media.kind} section has no DTLS fingerprint")
        kinds.append(media.kind)
    if len(set(kinds)) != len(kinds):
        raise AppError("invalid_sdp", "the offer may carry at most one audio and one video section")
    if not kinds:
        verb = "publish" if sending else "receive"
        raise AppError("invalid_sdp", f"the offer has no audio or video to {verb}")
    return text, kinds


def publish_preferences(kind: str, first: RTCRtpCodecParameters | None = None) -> list[RTCRtpCodecCapability]:
    """Codecs a publisher may send (with RTX); `first` is preferred (the codec of a stream that a
    resuming publisher continues)."""
    accepted = _lower(PUBLISH_MIME_TYPES[kind])
    codecs = _capabilities(kind, lambda capability: capability.mimeType.lower() in accepted, None)
    if first is not None:
        codecs.sort(key=lambda capability: not _same(capability, first))
    return codecs


def viewer_preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """Exactly the publisher's codec (with RTX): viewers get what was published, untouched."""
    return _capabilities(_kind(codec), lambda capability: True, codec)


def same_codecs(a: dict[str, RTCRtpCodecParameters], b: dict[str, RTCRtpCodecParameters]) -> bool:
    """Whether two publishers send the same codecs (payload type numbers aside)."""
    return a.keys() == b.keys() and all(
        a[kind].mimeType.lower() == b[kind].mimeType.lower()
        and a[kind].clockRate == b[kind].clockRate
        and a[kind].parameters == b[kind].parameters
        for kind in a
    )


def media_codec(codecs: list[RTCRtpCodecParameters]) -> RTCRtpCodecParameters | None:
    return next((codec for codec in codecs if not is_rtx(codec)), None)


def _kind(codec: RTCRtpCodecParameters) -> str:
    return codec.mimeType.split("/", 1)[0].lower()


def _lower(values: tuple[str, ...]) -> set[str]:
    return {value.lower() for value in values}


def _capabilities(
    kind: str, accept: Callable[[RTCRtpCodecCapability], bool], only: RTCRtpCodecParameters | None
) -> list[RTCRtpCodecCapability]:
    chosen = []
    for capability in RTCRtpSender.getCapabilities(kind).codecs:
        if is_rtx(capability):
            chosen.append(capability)
        elif accept(capability) and (only is None or _same(capability, only)):
            chosen.append(capability)
    return chosen


def _same(capability: RTCRtpCodecCapability, codec: RTCRtpCodecParameters) -> bool:
    return capability.mimeType.lower() == codec.mimeType.lower() and capability.parameters == codec.parameters
