"""One viewer's copy of one publisher track, sent the lean way.

The fanout packetises a frame once (`Frame`); the leg puts its own 12-byte RTP header in front of
each shared payload (its SSRC, sequence numbers, timestamp origin and payload type, plus the
`mid` header extension), protects it with the viewer's SRTP session and hands it to the
viewer's UDP socket with a plain `sendto`: no per-packet coroutine, queue or packet object.

It also keeps what RTP promises a receiver: NACKed packets are re-sent (as RTX when
negotiated) from the track's shared `PacketHistory`, sender reports map the viewer's RTP clock
to wall-clock time, receiver reports are kept for stats, and a BYE says goodbye.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp
from aiortc.rtp import (
    RtcpByePacket,
    RtcpReceiverInfo,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from pylibsrtp import Session

from livecommerce.media.history import PacketHistory

Endpoint = tuple[asyncio.DatagramTransport, tuple[str, int]]

# Bytes the OS would not take yet; past this the viewer cannot keep up and skips to a keyframe.
WRITE_BUFFER_LIMIT = 256 * 1024
_HEADER = struct.Struct("!BBHII")  # V=2 and X, M and PT, sequence number, timestamp, SSRC
_RTX_OSN = struct.Struct("!H")
_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP) to 1970 (Unix)


@dataclass(frozen=True, slots=True)
class Frame:
    """One publisher frame as every viewer gets it."""

    payloads: list[bytes]
    timestamp: int  # the fanout's RTP timestamp
    first_index: int  # of payloads[0] in the PacketHistory
    keyframe: bool


@dataclass(frozen=True)
class LegParameters:
    """What the viewer's answer negotiated for this track."""

    ssrc: int
    payload_type: int
    cname: str
    rtx_ssrc: int | None = None
    rtx_payload_type: int | None = None
    mid: str | None = None
    mid_extension_id: int | None = None


@dataclass(frozen=True)
class ReceiverReport:
    """The viewer's latest report on this track (RFC 3550 §6.4.2)."""

    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    round_trip_time: float | None


def ntp_now() -> int:
    """The current wall-clock time as a 64-bit NTP timestamp."""
    return int((time.time() + _NTP_UNIX_OFFSET) * (1 << 32))


def mid_extension(extension_id: int, mid: str) -> bytes:
    """The RTP header extension block (RFC 8285 one-byte form) carrying only `mid`."""
    value = mid.encode()
    element = bytes([(extension_id << 4) | (len(value) - 1)]) + value
    element += b"\x00" * (-len(element) % 4)
    return b"\xbe\xde" + struct.pack("!H", len(element) // 4) + element


class RtpLeg:
    def __init__(self, kind: str, history: PacketHistory, on_keyframe_request: Callable[[], None]) -> None:
        self.kind = kind
        self.needs_keyframe = kind == "video"
        self.packets_sent = 0
        self.bytes_sent = 0  # payload octets, as sender reports count them
        self.retransmitted = 0
        self.report: ReceiverReport | None = None
        self.on_keyframe_request = on_keyframe_request
        self._history = history
        self._params: LegParameters | None = None
        self._srtp: Session | None = None
        self._endpoint: Callable[[], Endpoint | None] = lambda: None
        # random starts, in the lower half of the sequence space like aiortc (fewer SRTP rollovers)
        self._seq = random.randrange(32768)
        self._rtx_seq = random.randrange(32768)
        self._timestamp_origin = random.getrandbits(32)
        self._next_index = -1
        # (first sequence number, first history index) of each run of consecutive packets: a
        # viewer that skipped frames (waiting for a keyframe) has one run per resumption.
        self._runs: deque[tuple[int, int]] = deque(maxlen=64)
        self._first_byte = 0x80
        self._tail = b""
        self._last_sr: int | None = None
        self._last_sr_at = 0.0

    @property
    def ready(self) -> bool:
        return self._srtp is not None

    def start(self, params: LegParameters, srtp: Session, endpoint: Callable[[], Endpoint | None]) -> None:
        """DTLS is up: from now on frames go out with these parameters and keys."""
        self._params = params
        self._srtp = srtp
        self._endpoint = endpoint
        extension = b""
        if params.mid is not None and params.mid_extension_id is not None:
            # BUNDLE demultiplexing by mid (RFC 8843 §9.2); constant per viewer, so built once.
            extension = mid_extension(params.mid_extension_id, params.mid)
        self._first_byte = 0x90 if extension else 0x80
        self._tail = extension
        if self.needs_keyframe:
            self.on_keyframe_request()  # now, not at signalling: one sent earlier may be gone by now

    def send_frame(self, frame: Frame) -> bool:
        """Send one frame; False when the viewer's socket is too far behind to take it."""
        srtp = self._srtp
        endpoint = self._endpoint()
        if srtp is None or endpoint is None or self._params is None:
            return True  # not connected (yet, or any more): the connection's own events handle it
        transport, address = endpoint
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            return False
        if frame.first_index != self._next_index:
            self._runs.append((self._seq, frame.first_index))
        protect, header, tail = srtp.protect, _HEADER.pack, self._tail
        first, ssrc, payload_type = self._first_byte, self._params.ssrc, self._params.payload_type
        timestamp = (frame.timestamp + self._timestamp_origin) & 0xFFFFFFFF
        seq = self._seq
        last = len(frame.payloads) - 1
        size = 0
        for i, payload in enumerate(frame.payloads):
            marker_pt = payload_type | 0x80 if i == last else payload_type
            transport.sendto(
                protect(header(first, marker_pt, seq, timestamp, ssrc) + tail + payload), address
            )
            seq = (seq + 1) & 0xFFFF
            size += len(payload)
        self._seq = seq
        self._next_index = frame.first_index + len(frame.payloads)
        self.packets_sent += len(frame.payloads)
        self.bytes_sent += size
        return True

    def retransmit(self, sequence_numbers: list[int]) -> None:
        """Answer a NACK with the packets still in the shared history."""
        srtp, endpoint, params = self._srtp, self._endpoint(), self._params
        if srtp is None or endpoint is None or params is None:
            return
        transport, address = endpoint
        for seq in sequence_numbers:
            index = self._index_of(seq)
            sent = self._history.get(index) if index is not None else None
            if sent is None:
                continue
            timestamp = (sent.timestamp + self._timestamp_origin) & 0xFFFFFFFF
            marker = 0x80 if sent.marker else 0
            if params.rtx_payload_type is not None and params.rtx_ssrc is not None:
                # RFC 4588: own SSRC and sequence, the original sequence number first in the payload
                head = _HEADER.pack(
                    self._first_byte,
                    marker | params.rtx_payload_type,
                    self._rtx_seq,
                    timestamp,
                    params.rtx_ssrc,
                )
                payload = _RTX_OSN.pack(seq) + sent.payload
                self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            else:
                head = _HEADER.pack(
                    self._first_byte, marker | params.payload_type, seq, timestamp, params.ssrc
                )
                payload = sent.payload
            try:
                data = srtp.protect(head + self._tail + payload)
            except pylibsrtp.Error:
                continue  # re-sent without RTX but behind libsrtp's replay window: let it go
            transport.sendto(data, address)
            self.retransmitted += 1

    def _index_of(self, seq: int) -> int | None:
        """The history index of a packet this leg sent with sequence number `seq`, if recent."""
        if not 1 <= (self._seq - seq) & 0xFFFF <= self._history.size:
            return None
        for run_seq, run_index in reversed(self._runs):
            into = (seq - run_seq) & 0xFFFF
            if into < (self._seq - run_seq) & 0xFFFF:
                return run_index + into
        return None

    def send_report(self, ntp: int, timestamp: int) -> None:
        """A sender report (with the CNAME) mapping wall-clock `ntp` to the fanout's `timestamp`."""
        params = self._params
        if params is None or not self.packets_sent:
            return
        report = RtcpSrPacket(
            ssrc=params.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=(timestamp + self._timestamp_origin) & 0xFFFFFFFF,
                packet_count=self.packets_sent & 0xFFFFFFFF,
                octet_count=self.bytes_sent & 0xFFFFFFFF,
            ),
        )
        cname = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=params.ssrc, items=[(1, params.cname.encode())])])
        if self._send_rtcp(bytes(report) + bytes(cname)):
            self._last_sr = (ntp >> 16) & 0xFFFFFFFF
            self._last_sr_at = time.monotonic()

    def receiver_report(self, info: RtcpReceiverInfo) -> None:
        rtt = None
        if self._last_sr is not None and info.lsr == self._last_sr and info.dlsr:
            rtt = max(0.0, time.monotonic() - self._last_sr_at - info.dlsr / 65536)
        elif self.report is not None:
            rtt = self.report.round_trip_time
        self.report = ReceiverReport(
            fraction_lost=info.fraction_lost,
            packets_lost=info.packets_lost,
            highest_sequence=info.highest_sequence,
            jitter=info.jitter,
            round_trip_time=rtt,
        )

    def stop(self) -> None:
        """Say BYE (RFC 3550 §6.6) and send nothing more."""
        if self._params is not None:
            self._send_rtcp(bytes(RtcpByePacket(sources=[self._params.ssrc])))
        self._srtp = None
        self._endpoint = lambda: None

    def _send_rtcp(self, data: bytes) -> bool:
        srtp, endpoint = self._srtp, self._endpoint()
        if srtp is None or endpoint is None:
            return False
        endpoint[0].sendto(srtp.protect_rtcp(data), endpoint[1])
        return True
