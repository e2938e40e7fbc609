"""Forwarding one publisher track to many viewers without decoding or re-encoding.

The publisher's tapped receiver hands each complete encoded frame to a `Fanout` once. The fanout
packetises it once (`Packetizer`), keeps the payloads in a shared `PacketHistory` for NACKs, and
gives the same `Frame` to every viewer's `RtpLeg`, which only writes its RTP headers, encrypts
and sends. Once a second the fanout has every leg send a sender report.

A video viewer starts on a keyframe: until one arrives it gets nothing, and the fanout asks the
publisher for one. A viewer whose socket cannot keep up skips frames and waits for the next
keyframe rather than seeing a broken picture. When the publisher changes (a reconnect within the
grace period, a takeover), output timestamps carry on from where they were, and each viewer's
sequence numbers simply continue, so decoders and jitter buffers see one continuous stream.
"""

from __future__ import annotations

import asyncio
import random
import time

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.media.history import PacketHistory
from livecommerce.media.keyframes import KeyframeRelay, is_keyframe
from livecommerce.media.packetizer import Packetizer
from livecommerce.media.rtp_leg import Frame, RtpLeg, ntp_now

HISTORY_PACKETS = {"video": 1024, "audio": 256}  # several seconds at 1.5 Mbit/s; 5 s of Opus
REPORT_INTERVAL = 1.0  # seconds between sender reports, varied by ±50 % (RFC 3550 §6.2)


class Fanout:
    """One publisher track (audio or video) → every viewer's RtpLeg."""

    def __init__(self, kind: str, codec: RTCRtpCodecParameters, keyframes: KeyframeRelay | None) -> None:
        self.kind = kind
        self.codec = codec
        self.keyframes = keyframes
        self.frames_in = 0
        self.packetizer = Packetizer(codec)
        self.history = PacketHistory(HISTORY_PACKETS[kind])
        self._legs: set[RtpLeg] = set()
        self._offset = 0
        self._last_out: int | None = None
        self._last_wall = 0.0
        self._rebase = False
        self._reports: asyncio.TimerHandle | None = None

    @property
    def viewers(self) -> int:
        return len(self._legs)

    def add_viewer(self) -> RtpLeg:
        leg = RtpLeg(self.kind, self.history, self._request_keyframe)
        self._legs.add(leg)
        if self._reports is None:
            self._schedule_reports()
        return leg

    def remove_viewer(self, leg: RtpLeg) -> None:
        self._legs.discard(leg)

    def new_source(self) -> None:
        """The publisher changed: continue timestamps, and restart video on a keyframe."""
        self._rebase = True
        for leg in self._legs:
            leg.needs_keyframe = self.kind == "video"

    def push(self, data: bytes, timestamp: int) -> int:
        """Forward one frame; return its timestamp on the track's continuous output clock."""
        self.frames_in += 1
        now = time.monotonic()
        if self._rebase or self._last_out is None:
            if self._last_out is not None:
                elapsed = max(1, round((now - self._last_wall) * self.codec.clockRate))
                self._offset = self._last_out + elapsed - timestamp
            else:
                self._offset = -timestamp
            self._rebase = False
        out = (timestamp + self._offset) & 0xFFFFFFFF
        self._last_out = out
        self._last_wall = now

        keyframe = self.kind != "video" or is_keyframe(self.codec.mimeType, data)
        payloads = self.packetizer.packetize(data)
        frame = Frame(payloads, out, self.history.add(payloads, out), keyframe)
        waiting = False
        for leg in self._legs:
            if not leg.ready:
                continue
            if leg.needs_keyframe:
                if not keyframe:
                    waiting = True
                    continue
                leg.needs_keyframe = False
            if not leg.send_frame(frame) and self.kind == "video":
                leg.needs_keyframe = True
                waiting = True
        if waiting:
            self._request_keyframe()
        return out

    def close(self) -> None:
        for leg in self._legs:
            leg.stop()
        self._legs.clear()
        if self._reports is not None:
            self._reports.cancel()
            self._reports = None

    def _request_keyframe(self) -> None:
        if self.keyframes is not None:
            self.keyframes.request()

    def _schedule_reports(self) -> None:
        delay = REPORT_INTERVAL * (0.5 + random.random())
        self._reports = asyncio.get_running_loop().call_later(delay, self._send_reports)

    def _send_reports(self) -> None:
        """Sender reports for every viewer: now in NTP time against the RTP timestamp the stream
        has reached now (the last frame's, advanced by the time since it arrived)."""
        self._schedule_reports()
        if self._last_out is None:
            return
        ntp = ntp_now()
        elapsed = round((time.monotonic() - self._last_wall) * self.codec.clockRate)
        timestamp = (self._last_out + elapsed) & 0xFFFFFFFF
        for leg in self._legs:
            leg.send_report(ntp, timestamp)
