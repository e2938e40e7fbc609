"""Keyframes: recognising them in VP8 and H.264 frames, and the PLI relay that turns every
viewer's need for one (a new viewer, a viewer's PLI or FIR, a dropped frame) into at most one
Picture Loss Indication (RFC 4585 §6.3.1) to the publisher per interval."""

from __future__ import annotations

import asyncio
import logging
import time

from aiortc import RTCRtpReceiver

from livecommerce.media.aiortc_internals import send_pli
from livecommerce.media.tasks import background

log = logging.getLogger(__name__)

MIN_PLI_INTERVAL = 0.5  # seconds between two PLIs to one publisher track
_H264_IDR = 5
_H264_SPS = 7


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame (as the jitter buffer reassembles it) starts a decodable picture."""
    if not data:
        return False
    mime = mime_type.lower()
    if mime == "video/vp8":
        # RFC 6386 §9.1: the frame tag's low bit is 0 for a key frame.
        return data[0] & 0x01 == 0
    if mime == "video/h264":
        return any(nal in (_H264_IDR, _H264_SPS) for nal in h264_nal_types(data))
    return True


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B byte stream (aiortc's H.264 depayloader writes Annex B)."""
    types = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


class KeyframeRelay:
    """Sends the publisher's video receiver a PLI when asked, no more often than `interval`;
    a request inside the interval is sent when the interval ends."""

    def __init__(self, interval: float = MIN_PLI_INTERVAL) -> None:
        self.interval = interval
        self.sent = 0
        self._receiver: RTCRtpReceiver | None = None
        self._last = -interval
        self._pending: asyncio.TimerHandle | None = None

    def attach(self, receiver: RTCRtpReceiver | None) -> None:
        """Point the relay at a (new) publisher's video receiver, or at nothing."""
        self._receiver = receiver

    def request(self) -> None:
        if self._pending is not None:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait > 0:
            self._pending = asyncio.get_running_loop().call_later(wait, self._send_pending)
        else:
            self._send()

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._receiver = None

    def _send_pending(self) -> None:
        self._pending = None
        self._send()

    def _send(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        ssrc = max(sources, key=lambda source: source.timestamp).source
        self._last = time.monotonic()
        self.sent += 1
        background(send_pli(receiver, ssrc))
