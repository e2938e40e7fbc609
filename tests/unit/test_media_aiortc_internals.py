"""The aiortc and aioice attributes the media plane reaches into exist in the installed versions;
an upgrade that removes one fails here (and at startup) with the attribute's name."""

from __future__ import annotations

import pytest
from aioice import stun
from aioice.ice import Connection
from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from livecommerce.media import aiortc_internals


async def test_installed_aiortc_and_aioice_have_every_attribute_in_use():
    # async: some aiortc objects look up the running event loop when they are made
    aiortc_internals.check()


async def test_a_removed_attribute_is_named(monkeypatch):
    monkeypatch.delattr(RTCRtpReceiver, "_send_rtcp_pli")
    with pytest.raises(aiortc_internals.IncompatibleAiortc, match=r"RTCRtpReceiver\._send_rtcp_pli"):
        aiortc_internals.check()


class _SentStun:
    """Where aioice writes its answers: the STUN messages a connection sent, and to whom."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, tuple[str, int]]] = []

    def send_stun(self, message: object, addr: tuple[str, int]) -> None:
        self.sent.append((message, addr))


def _binding_request(connection: Connection) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{connection.local_username}:remote"
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(connection.local_password.encode("utf8"))
    return request


async def test_checks_from_addresses_outside_the_scope_are_never_answered():
    """A peer must not see a check answered on an address the server will ignore: it would
    nominate that pair and wait for media that never comes."""
    connection = Connection(ice_controlling=False)
    aiortc_internals.ignore_checks_from(connection, allowed=lambda host: host.startswith("127."))
    wire = _SentStun()
    connection.request_received(_binding_request(connection), ("10.1.2.3", 5000), wire)
    assert wire.sent == []
    connection.request_received(_binding_request(connection), ("127.0.0.1", 5000), wire)
    assert [addr for _, addr in wire.sent] == [("127.0.0.1", 5000)]
    await connection.close()


def _packet(sequence_number: int, timestamp: int, data: bytes, marker: int = 0) -> RtpPacket:
    packet = RtpPacket(sequence_number=sequence_number, timestamp=timestamp, marker=marker, payload=data)
    packet._data = data  # what aiortc's receiver sets: the depayloaded bytes
    return packet


def test_a_video_frame_is_handed_on_with_its_marker_packet_not_a_frame_later():
    buffer = aiortc_internals.ForwardingJitterBuffer(capacity=64, is_video=True)
    assert buffer.add(_packet(100, 3000, b"a"))[1] is None
    frame = buffer.add(_packet(101, 3000, b"b", marker=1))[1]
    assert (frame.data, frame.timestamp) == (b"ab", 3000)
    frame = buffer.add(_packet(102, 6000, b"c", marker=1))[1]
    assert (frame.data, frame.timestamp) == (b"c", 6000)


def test_a_frame_waits_for_a_missing_packet_and_goes_once_it_is_repaired():
    buffer = aiortc_internals.ForwardingJitterBuffer(capacity=64, is_video=True)
    assert buffer.add(_packet(1, 90, b"x", marker=1))[1].data == b"x"
    assert buffer.add(_packet(3, 180, b"z", marker=1))[1] is None  # 2 is missing
    assert buffer.add(_packet(2, 180, b"y"))[1].data == b"yz"  # the retransmission completes it


def test_a_frame_without_a_marker_ends_at_the_next_frames_first_packet():
    buffer = aiortc_internals.ForwardingJitterBuffer(capacity=64, is_video=True)
    assert buffer.add(_packet(7, 90, b"p"))[1] is None
    frame = buffer.add(_packet(8, 180, b"q"))[1]
    assert (frame.data, frame.timestamp) == (b"p", 90)


def test_audio_packets_are_frames_of_their_own_with_no_prefetch():
    buffer = aiortc_internals.ForwardingJitterBuffer(capacity=16, is_video=False)
    assert [buffer.add(_packet(n, n * 960, bytes([n])))[1].data for n in range(1, 4)] == [
        b"\x01",
        b"\x02",
        b"\x03",
    ]
