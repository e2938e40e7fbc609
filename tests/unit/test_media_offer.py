"""Offers as WHIP and WHEP clients send them: bundle-only sections are taken in, and H.264 is
matched by profile compatibility (RFC 6184), not by the exact profile-level-id."""

from __future__ import annotations

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.sdp import SessionDescription

from livecommerce.media import offer

MAX_BUNDLE_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 0 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE video0 audio1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=mid:video0",
        "a=sendonly",
        "a=ice-ufrag:ufrag",
        "a=ice-pwd:passwordpasswordpassword",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=rtcp-mux",
        "a=rtpmap:96 VP8/90000",
        "m=audio 0 UDP/TLS/RTP/SAVPF 97",
        "c=IN IP4 0.0.0.0",
        "a=mid:audio1",
        "a=sendonly",
        "a=bundle-only",
        "a=rtcp-mux",
        "a=rtpmap:97 OPUS/48000/2",
        "",
    ]
)


def test_a_bundle_only_section_gets_the_tagged_sections_port_and_transport():
    text, kinds = offer.parse_offer(MAX_BUNDLE_OFFER.encode(), sending=True)
    assert kinds == ["video", "audio"]
    audio = SessionDescription.parse(text).media[1]
    assert audio.port == 9
    assert audio.ice.usernameFragment == "ufrag"
    assert audio.dtls.fingerprints[0].value == ":".join(["AB"] * 32)
    assert "a=bundle-only" not in text


def test_a_rejected_section_outside_the_bundle_stays_rejected():
    rejected = MAX_BUNDLE_OFFER.replace("a=group:BUNDLE video0 audio1", "a=group:BUNDLE video0")
    text, kinds = offer.parse_offer(rejected.encode(), sending=True)
    assert kinds == ["video"]
    assert SessionDescription.parse(text).media[1].port == 0


def test_an_offer_without_bundle_only_sections_is_unchanged():
    plain = MAX_BUNDLE_OFFER.replace("m=audio 0", "m=audio 9").replace("a=bundle-only\r\n", "")
    assert offer.include_bundle_only_sections(plain) == plain


def h264(profile_level_id: str, mode: str = "1") -> dict[str, object]:
    return {"profile-level-id": profile_level_id, "packetization-mode": mode}


def test_h264_constrained_baseline_and_baseline_viewers_play_each_others_streams():
    ffmpeg_baseline, constrained_baseline = h264("42000d"), h264("42e01f")
    assert offer.h264_decodable(ffmpeg_baseline, constrained_baseline)
    assert offer.h264_decodable(constrained_baseline, h264("42001f"))


def test_h264_levels_need_not_match():
    assert offer.h264_decodable(h264("42e034"), h264("42e00a"))


def test_h264_higher_profiles_decode_constrained_baseline_but_not_the_reverse():
    assert offer.h264_decodable(h264("42e01f"), h264("640c1f"))  # constrained high
    assert offer.h264_decodable(h264("42e01f"), h264("4d001f"))  # main
    assert not offer.h264_decodable(h264("64001f"), h264("42e01f"))  # high to a baseline decoder
    assert not offer.h264_decodable(h264("64001f"), h264("4d001f"))  # high to main


def test_h264_packetization_modes_must_match():
    assert not offer.h264_decodable(h264("42e01f", "1"), h264("42e01f", "0"))
    assert offer.h264_decodable({"profile-level-id": "42e01f"}, h264("42e01f", "0"))


def test_a_baseline_stream_is_offered_to_viewers_with_both_baseline_profiles():
    stream = RTCRtpCodecParameters(
        mimeType="video/H264", clockRate=90000, payloadType=96, parameters=h264("42001f")
    )
    profiles = {
        c.parameters["profile-level-id"]
        for c in offer.viewer_preferences(stream)
        if c.mimeType == "video/H264"
    }
    assert profiles == {"42001f", "42e01f"}
