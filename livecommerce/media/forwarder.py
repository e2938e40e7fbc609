"""Forwarding one publisher track to many viewers without decoding or re-encoding.

The publisher's tapped receiver hands each complete encoded frame to a `Fanout` once. The fanout
wraps it in one `av.Packet` (payload, RTP timestamp, clock rate) and queues that same packet on
every viewer's `ForwardedTrack`; each viewer's stock RTCRtpSender reads the packet and only
packetises it (the codec's `pack`). Per viewer that is packetisation and SRTP, nothing else.

A video viewer starts on a keyframe: until one arrives it gets nothing, and the fanout asks the
publisher for one. A viewer too slow to keep up loses queued frames and waits for the next
keyframe rather than seeing a broken picture. When the publisher changes (a reconnect within the
grace period, a takeover), output timestamps carry on from where they were, so viewers' decoders
and jitter buffers see one continuous stream.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.media.keyframes import KeyframeRelay, is_keyframe

QUEUE_FRAMES = {"video": 90, "audio": 150}  # about three seconds of media per viewer


class ForwardedTrack(MediaStreamTrack):
    """One viewer's copy of a publisher track: pre-encoded packets for the viewer's sender."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.needs_keyframe = kind == "video"
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(QUEUE_FRAMES[kind])

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            self.stop()
            raise MediaStreamError
        return packet

    def offer(self, packet: av.Packet) -> bool:
        """Queue a packet; False when the viewer is too far behind (its queue is then emptied)."""
        try:
            self._queue.put_nowait(packet)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            return False
        return True

    def end(self) -> None:
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()


class Fanout:
    """One publisher track (audio or video) → every viewer's ForwardedTrack."""

    def __init__(self, kind: str, codec: RTCRtpCodecParameters, keyframes: KeyframeRelay | None) -> None:
        self.kind = kind
        self.codec = codec
        self.keyframes = keyframes
        self.frames_in = 0
        self._tracks: set[ForwardedTrack] = set()
        self._time_base = Fraction(1, codec.clockRate)
        self._offset = 0
        self._last_out: int | None = None
        self._last_wall = 0.0
        self._rebase = False

    @property
    def viewers(self) -> int:
        return len(self._tracks)

    def add_viewer(self) -> ForwardedTrack:
        track = ForwardedTrack(self.kind)
        self._tracks.add(track)
        if track.needs_keyframe:
            self._request_keyframe()
        return track

    def remove_viewer(self, track: ForwardedTrack) -> None:
        self._tracks.discard(track)
        track.end()

    def new_source(self) -> None:
        """The publisher changed: continue timestamps, and restart video on a keyframe."""
        self._rebase = True
        for track in self._tracks:
            track.needs_keyframe = self.kind == "video"

    def push(self, data: bytes, timestamp: int) -> None:
        self.frames_in += 1
        now = time.monotonic()
        if self._rebase or self._last_out is None:
            if self._last_out is not None:
                elapsed = max(1, round((now - self._last_wall) * self.codec.clockRate))
                self._offset = self._last_out + elapsed - timestamp
            else:
                self._offset = -timestamp
            self._rebase = False
        out = timestamp + self._offset
        self._last_out = out
        self._last_wall = now

        packet = av.Packet(data)
        packet.pts = out
        packet.time_base = self._time_base
        keyframe = self.kind != "video" or is_keyframe(self.codec.mimeType, data)
        waiting = False
        for track in self._tracks:
            if track.needs_keyframe:
                if not keyframe:
                    waiting = True
                    continue
                track.needs_keyframe = False
            if not track.offer(packet) and self.kind == "video":
                track.needs_keyframe = True
                waiting = True
        if waiting:
            self._request_keyframe()

    def close(self) -> None:
        for track in self._tracks:
            track.end()
        self._tracks.clear()

    def _request_keyframe(self) -> None:
        if self.keyframes is not None:
            self.keyframes.request()
