"""The lean send path: one packetisation per frame, per-viewer RTP headers, NACK retransmission
from the shared history, sender reports, resync on keyframes and continuity across publishers.

The first tests drive a Fanout and its legs with a fake socket and SRTP; the others use real
aiortc peers on loopback, some counting their RTP below aiortc's receive path."""

from __future__ import annotations

import itertools
import struct
import time

import aiohttp
import pytest
import testpattern
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpPacket, RtcpSrPacket
from helpers import wait_for
from test_media import HEIGHT, MEDIA_TIMEOUT, WIDTH, start_publisher, urls

from livecommerce.appkeys import MEDIA
from livecommerce.media.aiortc_internals import on_datagrams
from livecommerce.media.forwarder import Fanout
from livecommerce.media.rtp_leg import LegParameters, RtpLeg

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90_000, payloadType=96)
KEY = b"\x10" + bytes(2999)  # RFC 6386: the low bit of the first byte is 0 on a key frame
DELTA = b"\x11" + bytes(2999)
VP8_DESCRIPTOR = 4  # aiortc's VP8 payload descriptor with a 15-bit picture id
NTP_UNIX_OFFSET = 2_208_988_800


class FakeSrtp:
    def protect(self, data: bytes) -> bytes:
        return data

    def protect_rtcp(self, data: bytes) -> bytes:
        return data


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.backlog = 0

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append(data)

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def rtp(self) -> list[tuple[int, int, int, int, bool, bytes]]:
        """(payload type, sequence number, timestamp, ssrc, marker, payload) of each RTP packet."""
        packets = []
        for data in self.sent:
            if 192 <= data[1] <= 208:
                continue
            assert data[0] == 0x90  # version 2 with the mid extension
            marker_pt, seq, timestamp, ssrc = struct.unpack_from("!BHII", data, 1)
            (words,) = struct.unpack_from("!H", data, 14)
            assert data[12:14] == b"\xbe\xde"
            payload = data[16 + 4 * words :]
            packets.append((marker_pt & 0x7F, seq, timestamp, ssrc, bool(marker_pt & 0x80), payload))
        return packets


class CountingRelay:
    def __init__(self) -> None:
        self.requests = 0

    def request(self) -> None:
        self.requests += 1


def started_leg(fanout: Fanout, *, rtx: bool = True) -> tuple[RtpLeg, FakeSocket]:
    leg = fanout.add_viewer()
    socket = FakeSocket()
    params = LegParameters(
        ssrc=1111,
        payload_type=96,
        cname="viewer",
        rtx_ssrc=2222 if rtx else None,
        rtx_payload_type=97 if rtx else None,
        mid="0",
        mid_extension_id=1,
    )
    leg.start(params, FakeSrtp(), lambda: (socket, ("127.0.0.1", 9)))  # type: ignore[arg-type]
    return leg, socket


def assert_consecutive(sequence_numbers: list[int]) -> None:
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequence_numbers))


async def test_the_packetiser_runs_once_per_frame_whatever_the_audience():
    fanout = Fanout("video", VP8, None)
    calls = []
    packetize = fanout.packetizer.packetize
    fanout.packetizer.packetize = lambda data: calls.append(data) or packetize(data)  # type: ignore[method-assign]
    sockets = [started_leg(fanout)[1] for _ in range(5)]
    for index in range(10):
        fanout.push(KEY if index == 0 else DELTA, index * 3000)
    assert len(calls) == 10
    for socket in sockets:
        packets = socket.rtp()
        assert len(packets) == 30  # 3 payloads a frame, every frame
        # the payloads are the shared ones; only the headers are the viewer's
        assert [p[5] for p in packets] == [p[5] for p in sockets[0].rtp()]
    fanout.close()


async def test_a_viewer_starts_on_a_keyframe_asked_for_when_it_connects():
    relay = CountingRelay()
    fanout = Fanout("video", VP8, relay)  # type: ignore[arg-type]
    fanout.push(KEY, 0)
    _leg, socket = started_leg(fanout)
    assert relay.requests == 1  # a new viewer asks the publisher for a keyframe
    fanout.push(DELTA, 3000)
    fanout.push(DELTA, 6000)
    assert socket.sent == [] and relay.requests == 3
    fanout.push(KEY, 9000)
    fanout.push(DELTA, 12000)
    packets = socket.rtp()
    assert packets[0][5][VP8_DESCRIPTOR:] == KEY[: len(packets[0][5]) - VP8_DESCRIPTOR]
    assert [p[4] for p in packets] == [False, False, True] * 2  # the marker ends each frame
    assert_consecutive([p[1] for p in packets])
    assert packets[3][2] - packets[0][2] == 3000
    fanout.close()


async def test_a_slow_viewer_skips_to_a_keyframe_with_no_gap_in_its_sequence_numbers():
    relay = CountingRelay()
    fanout = Fanout("video", VP8, relay)  # type: ignore[arg-type]
    leg, socket = started_leg(fanout)
    fanout.push(KEY, 0)
    socket.backlog = 10**6  # the socket cannot take more
    fanout.push(DELTA, 3000)
    assert leg.needs_keyframe and relay.requests == 2
    socket.backlog = 0
    fanout.push(DELTA, 6000)  # still waiting for a keyframe
    fanout.push(KEY, 9000)
    packets = socket.rtp()
    assert len(packets) == 6
    assert_consecutive([p[1] for p in packets])
    assert [p[2] - packets[0][2] for p in packets[::3]] == [0, 9000]
    fanout.close()


async def test_nacks_are_answered_from_the_shared_history_as_rtx_across_a_skip():
    fanout = Fanout("video", VP8, None)
    leg, socket = started_leg(fanout)
    fanout.push(KEY, 0)
    socket.backlog = 10**6
    fanout.push(DELTA, 3000)  # skipped: the leg's sequence numbers now map differently
    socket.backlog = 0
    fanout.push(KEY, 6000)
    original = socket.rtp()
    wanted = [original[1], original[4]]  # one from each run of packets
    leg.retransmit([p[1] for p in wanted] + [(original[0][1] - 2000) & 0xFFFF])  # the last is too old
    resent = socket.rtp()[len(original) :]
    assert len(resent) == 2 and leg.retransmitted == 2
    for packet, (payload_type, _, timestamp, ssrc, marker, payload) in zip(wanted, resent, strict=True):
        assert (payload_type, ssrc) == (97, 2222)
        assert struct.unpack("!H", payload[:2])[0] == packet[1]  # the original sequence number
        assert payload[2:] == packet[5] and timestamp == packet[2] and marker == packet[4]
    assert_consecutive([p[1] for p in resent])  # RTX has its own sequence
    fanout.close()


async def test_without_rtx_a_nacked_packet_is_sent_again_as_it_was():
    fanout = Fanout("video", VP8, None)
    leg, socket = started_leg(fanout, rtx=False)
    fanout.push(KEY, 0)
    original = socket.rtp()
    leg.retransmit([original[1][1]])
    assert socket.rtp()[3:] == [original[1]]
    fanout.close()


async def test_sender_reports_map_wall_clock_to_the_rtp_clock():
    fanout = Fanout("video", VP8, None)
    leg, socket = started_leg(fanout)
    fanout.push(KEY, 0)
    fanout._send_reports()
    reports = [packet for data in socket.sent if 192 <= data[1] <= 208 for packet in RtcpPacket.parse(data)]
    report = next(packet for packet in reports if isinstance(packet, RtcpSrPacket))
    info = report.sender_info
    assert report.ssrc == 1111 and info.packet_count == 3 and info.octet_count == leg.bytes_sent
    assert abs(info.ntp_timestamp / 2**32 - NTP_UNIX_OFFSET - time.time()) < 1
    # the report is taken just after the frame: its RTP time is the frame's, a few ms on
    assert 0 <= (info.rtp_timestamp - socket.rtp()[0][2]) & 0xFFFFFFFF < 90_000 // 4
    fanout.close()


async def test_a_new_publisher_continues_timestamps_and_sequence_numbers():
    fanout = Fanout("video", VP8, None)
    leg, socket = started_leg(fanout)
    fanout.push(KEY, 500_000)
    fanout.push(DELTA, 503_000)
    fanout.new_source()
    assert leg.needs_keyframe
    fanout.push(DELTA, 0)  # the new publisher's clock starts anywhere; no keyframe yet
    fanout.push(KEY, 3000)
    packets = socket.rtp()
    assert len(packets) == 9
    assert_consecutive([p[1] for p in packets])
    assert 0 < (packets[6][2] - packets[3][2]) & 0xFFFFFFFF < 90_000
    fanout.close()


# -- real peers ------------------------------------------------------------------------------


def server_leg(server, room_id: int, kind: str = "video") -> RtpLeg:
    stream = server.app[MEDIA].streams[room_id]
    (viewer,) = stream.viewers.values()
    return viewer.legs[kind]


async def test_a_viewer_that_loses_packets_gets_them_resent(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await start_publisher(http, server, world)
        viewer = await testpattern.play(http, whep)
        payload_types = testpattern.RtpCounter(viewer, viewer.pc.remoteDescription.sdp).kinds
        video = {pt for pt, kind in payload_types.items() if kind == "video"}
        dropped: list[int] = []
        rtx_seen = []

        def lossy(data: bytes) -> bool:
            """Drop a few video packets once each (the RTP header is in the clear)."""
            if not 127 < data[0] < 192 or 192 <= data[1] <= 208:
                return False  # DTLS or RTCP
            payload_type = data[1] & 0x7F
            if payload_type not in payload_types:
                rtx_seen.append(payload_type)
            if payload_type not in video:
                return False
            seq = struct.unpack_from("!H", data, 2)[0]
            if len(dropped) < 5 and seq % 37 == 0 and seq not in dropped:
                dropped.append(seq)
                return True
            return False

        on_datagrams(viewer.pc, lossy)
        await wait_for(lambda: len(dropped) == 5, timeout=MEDIA_TIMEOUT, message="five packets dropped")
        leg = server_leg(server, world.room_id)
        await wait_for(lambda: leg.retransmitted >= 5, timeout=MEDIA_TIMEOUT, message="the retransmissions")
        frames = viewer.video_frames
        await wait_for(
            lambda: viewer.video_frames >= frames + 15, timeout=MEDIA_TIMEOUT, message="more video"
        )
        assert len(rtx_seen) >= 5  # they came back as RTX
        assert viewer.decode_errors == 0 and viewer.sizes == {(WIDTH, HEIGHT)}

        # The viewer's receiver reports reach the sender's stats (with a round trip from the SR).
        await wait_for(
            lambda: leg.report is not None and leg.report.round_trip_time is not None,
            timeout=MEDIA_TIMEOUT,
            message="a receiver report answering a sender report",
        )
        (server_viewer,) = server.app[MEDIA].streams[world.room_id].viewers.values()
        report = (await server_viewer.pc.getStats()).values()
        stats = {s.type: s for s in report if getattr(s, "kind", None) == "video"}
        assert 0 < stats["outbound-rtp"].packetsSent <= leg.packets_sent
        assert stats["remote-inbound-rtp"].roundTripTime is not None
        await viewer.close()
        await publisher.pc.close()


async def test_counting_viewers_get_sane_sender_reports_and_one_packetisation_per_frame(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        publisher = await start_publisher(http, server, world)
        await wait_for(lambda: world.room_id in server.app[MEDIA].streams, timeout=MEDIA_TIMEOUT)
        fanout = server.app[MEDIA].streams[world.room_id].fanouts["video"]
        calls = []
        packetize = fanout.packetizer.packetize
        fanout.packetizer.packetize = lambda data: calls.append(1) or packetize(data)  # type: ignore[method-assign]
        frames_before = fanout.frames_in
        viewers = [await testpattern.play(http, whep, decode=False, count_only=True) for _ in range(3)]
        for viewer in viewers:
            await wait_for(lambda v=viewer: v.video_frames >= 30, timeout=MEDIA_TIMEOUT, message="video")
        assert len(calls) == fanout.frames_in - frames_before

        counter = viewers[0].rtp
        assert counter is not None
        await wait_for(
            lambda: all(sum(r.ssrc == ssrc for r in counter.sender_reports) >= 2 for ssrc in counter.streams),
            timeout=MEDIA_TIMEOUT,
            message="two sender reports for audio and for video",
        )
        for kind, clock in (("video", 90_000), ("audio", 48_000)):
            ssrc = next(ssrc for ssrc, stream in counter.streams.items() if stream.kind == kind)
            reports = [r for r in counter.sender_reports if r.ssrc == ssrc]
            assert len(reports) >= 2
            for report in reports:
                assert abs(report.ntp / 2**32 - NTP_UNIX_OFFSET - report.arrived) < 1.0
            first, last = reports[0], reports[-1]
            wall = (last.ntp - first.ntp) / 2**32
            media = ((last.rtp_timestamp - first.rtp_timestamp) & 0xFFFFFFFF) / clock
            assert wall > 0.3 and abs(media - wall) < 0.5
        for viewer in viewers:
            received, lost = viewer.rtp.totals("video")  # type: ignore[union-attr]
            assert received > 0 and lost == 0
            await viewer.close()
        await publisher.pc.close()


@pytest.fixture
def settings(settings):
    settings.publisher_grace_seconds = 30
    return settings


async def test_sequence_numbers_continue_across_a_publisher_reconnect(server):
    world = await server.seed()
    _, whep = urls(server, world.room_id)
    async with aiohttp.ClientSession() as http:
        first = await start_publisher(http, server, world)
        viewer = await testpattern.play(http, whep, decode=False, count_only=True)
        await wait_for(lambda: viewer.video_frames >= 10, timeout=MEDIA_TIMEOUT, message="the viewer plays")
        stream = server.app[MEDIA].streams[world.room_id]
        await first.pc.close()
        await wait_for(lambda: stream.state == "grace", timeout=MEDIA_TIMEOUT, message="the grace period")
        frames = viewer.video_frames
        second = await start_publisher(http, server, world)
        await wait_for(lambda: viewer.video_frames >= frames + 20, timeout=MEDIA_TIMEOUT, message="resumed")
        assert stream.resumes == 1
        counter = viewer.rtp
        assert counter is not None
        # one SSRC per kind throughout, every sequence number following the one before
        assert sorted(stream.kind for stream in counter.streams.values()) == ["audio", "video"]
        for rtp in counter.streams.values():
            assert rtp.jumps == 0 and rtp.lost == 0 and rtp.received > 0
        await viewer.close()
        await second.pc.close()
