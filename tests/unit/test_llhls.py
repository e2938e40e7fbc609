"""LL-HLS playlists without I/O: segments cut at keyframes, parts, blocking-reload decisions,
preload hints, the end of a live and a recording's VOD playlist; and the H.264 picture size read
from a sequence parameter set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from livecommerce.media import h264, llhls

LAYOUT = llhls.Layout(segment_seconds=2.0, part_seconds=0.5)
START = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)


def part(independent: bool = False, duration: float = 0.5) -> llhls.Part:
    return llhls.Part(b"x", duration, independent)


def live(*independents: bool) -> llhls.LivePlaylist:
    playlist = llhls.LivePlaylist(LAYOUT, window=3)
    for independent in independents:
        playlist.add(part(independent), START)
    return playlist


def test_a_live_starts_on_a_keyframe_and_cuts_segments_at_keyframes_past_half_the_target():
    playlist = live(False, True, True, False, True, False, False, True)
    # the leading non-keyframe part is dropped; the keyframe 0.5 s in does not cut (1 s at
    # least), the ones 1.5 s in do
    assert [len(s.parts) for s in playlist.segments] == [3, 3, 1]
    assert [s.complete for s in playlist.segments] == [True, True, False]


def test_the_window_keeps_the_newest_segments():
    playlist = live(*([True, False] * 10))
    assert [s.msn for s in playlist.segments] == [6, 7, 8, 9]
    assert playlist.first_msn == 6


def test_blocking_reload_waits_for_the_part_or_anything_later_and_refuses_far_ahead():
    playlist = live(True, False)
    assert playlist.ready(0, 1) and not playlist.ready(0, 2)
    assert not playlist.ready(0, None)  # the whole segment is not complete yet
    assert not playlist.ready(1, 0)
    with pytest.raises(llhls.BadRequest):
        playlist.ready(3, 0)
    playlist.add(part(True), START)
    assert playlist.ready(0, None) and playlist.ready(0, 5) and playlist.ready(1, 0)


def test_the_next_part_is_hinted_and_may_be_waited_for():
    playlist = live(True, False)
    text = playlist.render("7/")
    assert text.rstrip().endswith('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="7/0.2.m4s"')
    assert playlist.part_available(0, 1) is True
    assert playlist.part_available(0, 2) is False
    assert playlist.part_available(0, 3) is None
    assert playlist.part_available(5, 0) is None


def test_the_live_playlist_lists_parts_segments_and_server_control():
    playlist = live(True, False, False, True, False)
    text = playlist.render("7/")
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:3\n")
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500" in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.500" in text
    assert "#EXT-X-MEDIA-SEQUENCE:0" in text
    assert '#EXT-X-MAP:URI="7/init.mp4"' in text
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-11-29T18:00:00.000Z" in text
    assert '#EXT-X-PART:DURATION=0.500,URI="7/0.0.m4s",INDEPENDENT=YES' in text
    assert '#EXT-X-PART:DURATION=0.500,URI="7/0.1.m4s"\n' in text
    assert "#EXTINF:1.500,\n7/0.m4s" in text
    assert "#EXT-X-ENDLIST" not in text


def test_an_ended_live_completes_its_last_segment_and_ends_the_playlist():
    playlist = live(True, False)
    completed = playlist.end()
    assert completed is not None and completed.complete and playlist.ready(9, 0)
    text = playlist.render("7/")
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "PRELOAD-HINT" not in text and "CAN-BLOCK-RELOAD" not in text


def test_a_recording_playlist_is_a_vod_list_of_every_segment():
    text = llhls.vod_playlist(LAYOUT, [(0, 2.0), (1, 4.4)], START)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-TARGETDURATION:4" in text
    assert "#EXTINF:4.400,\n1.m4s" in text and text.rstrip().endswith("#EXT-X-ENDLIST")


def test_segment_and_part_names_parse_and_nothing_else_does():
    assert llhls.parse_name("12.m4s") == (12, None)
    assert llhls.parse_name("12.3.m4s") == (12, 3)
    for bad in ("x.m4s", "12.mp4", "../12.m4s", "12..m4s", "-1.m4s", "1.2.3.m4s"):
        assert llhls.parse_name(bad) is None, bad


# libx264's: 640x360 and 1920x1080 are cropped from whole macroblocks, 1280x720 is not
SPS_640x360 = bytes.fromhex("6742c01eda0280bfe584000003000400000300f23c58ba80")
SPS_1280x720 = bytes.fromhex("6742c01fda014016e840000003004000000f23c60ca8")
SPS_1920x1080 = bytes.fromhex("6742c028da01e0089f9610000003001000000303c8f1832a")


@pytest.mark.parametrize(
    ("sps", "size"),
    [(SPS_640x360, (640, 360)), (SPS_1280x720, (1280, 720)), (SPS_1920x1080, (1920, 1080))],
)
def test_the_picture_size_comes_from_the_sequence_parameter_set(sps, size):
    assert h264.picture_size(sps) == size


def test_nal_units_split_annex_b_with_three_and_four_byte_start_codes():
    data = b"\x00\x00\x00\x01" + SPS_640x360 + b"\x00\x00\x01\x68\xce\x38\x80" + b"\x00\x00\x01\x65\x88"
    assert h264.nal_units(data) == [SPS_640x360, b"\x68\xce\x38\x80", b"\x65\x88"]
    assert h264.sequence_parameter_set(data) == SPS_640x360
    with pytest.raises(ValueError):
        h264.picture_size(SPS_640x360[:6])
