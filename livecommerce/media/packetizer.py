"""Cutting one encoded frame into RTP payloads, once per publisher track.

Every viewer of a track gets the same payload chunks (codec payload descriptor included), so the
fanout packetises each frame here once and the viewers' legs only put their own RTP header in
front. The cutting is aiortc's own: its encoders' `pack` (VP8 payload descriptor with picture
id, H.264 STAP-A/FU-A, Opus as is), exactly what its stock sender would send.
"""

from __future__ import annotations

from fractions import Fraction

import av
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


class Packetizer:
    """One track's payloader: `packetize(frame) -> [payload, ...]`, the last one carries the marker."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self._encoder = get_encoder(codec)  # only its `pack`; it never encodes
        self._time_base = Fraction(1, codec.clockRate)

    def packetize(self, data: bytes) -> list[bytes]:
        packet = av.Packet(data)
        # `pack` also converts a timestamp; the fanout keeps its own, so any pts will do.
        packet.pts = 0
        packet.time_base = self._time_base
        payloads, _ = self._encoder.pack(packet)
        return payloads
