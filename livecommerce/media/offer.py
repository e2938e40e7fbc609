"""SDP offers for WHIP and WHEP: checking what a client sent before any peer connection exists,
taking in bundle-only sections, and the codecs each side may negotiate (publishers: VP8 or H.264
video, Opus audio; viewers: the publisher's codec, H.264 by profile compatibility)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import H264Profile, SessionDescription, parse_h264_profile_level_id

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
    text = include_bundle_only_sections(text)
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


# Transport attributes a bundle-only section shares with the section that carries the transport.
_TRANSPORT_ATTRIBUTES = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:")


def include_bundle_only_sections(text: str) -> str:
    """Give every bundle-only section (RFC 8843 §7.3: port 0 and `a=bundle-only`, as GStreamer's
    and browsers' `max-bundle` policy offers all sections but the first) the port and transport
    attributes of the BUNDLE group's first section, which carries the transport for all of them.
    The offer then reads as the plain bundled offer it stands for; other sections are unchanged.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    if not starts:
        return text
    sections = [lines[a:b] for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    bundle = next((line.split()[1:] for line in lines[: starts[0]] if line.startswith("a=group:BUNDLE ")), [])
    by_mid = {_attribute(section, "a=mid:"): section for section in sections}
    tagged = by_mid.get(bundle[0]) if bundle else None
    if tagged is None or _port(tagged) == "0":
        return text
    for section in sections:
        if (
            _port(section) != "0"
            or "a=bundle-only" not in section
            or _attribute(section, "a=mid:") not in bundle
        ):
            continue
        words = section[0].split(" ")
        words[1] = _port(tagged)
        section[0] = " ".join(words)
        section.remove("a=bundle-only")
        for prefix in _TRANSPORT_ATTRIBUTES:
            if _attribute(section, prefix) is None:
                section.extend(line for line in tagged if line.startswith(prefix))
    trailing = [""] if lines[-1] == "" else []
    body = [line for section in sections for line in section if line != ""]
    return newline.join([*lines[: starts[0]], *body, *trailing])


def _attribute(section: list[str], prefix: str) -> str | None:
    return next((line.removeprefix(prefix) for line in section if line.startswith(prefix)), None)


def _port(section: list[str]) -> str:
    words = section[0].split(" ")
    return words[1] if len(words) > 1 else ""


def publish_preferences(
    kind: str, first: RTCRtpCodecParameters | None = None, offered: Sequence[str] = ()
) -> list[RTCRtpCodecCapability]:
    """Codecs a publisher may send (with RTX): `first` is preferred (the codec of a stream that a
    resuming publisher continues), then the offer's own order of codecs (`offered`, MIME types:
    the studio offers H.264 first, which also gives the live HLS)."""
    accepted = _lower(PUBLISH_MIME_TYPES[kind])
    codecs = _capabilities(kind, lambda capability: capability.mimeType.lower() in accepted, None)
    rank = {mime.lower(): index for index, mime in reversed(list(enumerate(offered)))}
    codecs.sort(
        key=lambda capability: (
            first is not None and not _same(capability, first),
            rank.get(capability.mimeType.lower(), len(rank)),
        )
    )
    return codecs


def offered_codecs(text: str, kind: str) -> list[str]:
    """The MIME types of the offer's `kind` section, in the offer's order of preference."""
    for media in SessionDescription.parse(text).media:
        if media.kind == kind:
            by_type = {codec.payloadType: codec.mimeType for codec in media.rtp.codecs}
            return [by_type[int(fmt)] for fmt in media.fmt if str(fmt).isdigit() and int(fmt) in by_type]
    return []


def viewer_preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """The publisher's codec (with RTX): viewers get what was published, untouched. For H.264,
    every profile whose decoders can decode the published one (`h264_decodable`)."""
    if codec.mimeType.lower() == "video/h264":
        return _capabilities(
            "video",
            lambda capability: (
                capability.mimeType.lower() == "video/h264"
                and h264_decodable(codec.parameters, capability.parameters)
            ),
            None,
        )
    return _capabilities(_kind(codec), lambda capability: True, codec)


# What a decoder of each H.264 profile decodes (RFC 6184 §8.1: a receiver of a profile can take a
# stream of a profile that is a subset of it). Constrained Baseline and Baseline stand for each
# other, as in browsers: Baseline adds only FMO, ASO and redundant slices, which no WebRTC encoder
# (x264, OpenH264, hardware encoders) produces, so FFmpeg's "baseline" (42000d) plays wherever
# constrained baseline (42e01f) does.
_BASELINE = {H264Profile.PROFILE_CONSTRAINED_BASELINE, H264Profile.PROFILE_BASELINE}
_DECODES = {
    H264Profile.PROFILE_CONSTRAINED_BASELINE: _BASELINE,
    H264Profile.PROFILE_BASELINE: _BASELINE,
    H264Profile.PROFILE_MAIN: {*_BASELINE, H264Profile.PROFILE_MAIN},
    H264Profile.PROFILE_CONSTRAINED_HIGH: {*_BASELINE, H264Profile.PROFILE_CONSTRAINED_HIGH},
    H264Profile.PROFILE_HIGH: {
        *_BASELINE,
        H264Profile.PROFILE_MAIN,
        H264Profile.PROFILE_CONSTRAINED_HIGH,
        H264Profile.PROFILE_HIGH,
    },
}
_DECODES[H264Profile.PROFILE_PREDICTIVE_HIGH_444] = {
    *_DECODES[H264Profile.PROFILE_HIGH],
    H264Profile.PROFILE_PREDICTIVE_HIGH_444,
}
_RFC6184_DEFAULT_PROFILE_LEVEL_ID = "420010"  # baseline, level 1.0, when the fmtp has none


def h264_profile(parameters: dict[str, object]) -> H264Profile | None:
    """The H.264 profile of an fmtp's profile-level-id (the level is not part of it), or None."""
    try:
        profile, _ = parse_h264_profile_level_id(
            str(parameters.get("profile-level-id", _RFC6184_DEFAULT_PROFILE_LEVEL_ID))
        )
    except ValueError:
        return None
    return profile


def h264_decodable(stream: dict[str, object], receiver: dict[str, object]) -> bool:
    """Whether a receiver offering the `receiver` fmtp can decode a stream sent with the `stream`
    fmtp: the same packetization mode and a profile that includes the stream's. Levels need not
    match (level-asymmetry-allowed): the level a receiver declares is what it can decode, and a
    forwarding server cannot change the stream's."""
    if str(stream.get("packetization-mode", "0")) != str(receiver.get("packetization-mode", "0")):
        return False
    sent, decoder = h264_profile(stream), h264_profile(receiver)
    return sent is not None and decoder is not None and sent in _DECODES.get(decoder, set())


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
