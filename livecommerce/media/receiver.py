"""The publisher side of forwarding: an RTCRtpReceiver whose reassembled encoded frames (the
jitter buffer's output) go to a sink instead of a decoder.

aiortc's receiver starts a decoder thread per track and feeds decoded frames into an unbounded
queue for a track that something must read; a forwarding server needs neither. `tap` turns a
negotiated receiver into an `EncodedFrameReceiver` before it starts, so the jitter buffer output
goes straight to `FrameSink.put((codec, frame))` on the event loop, and the end of the track
(RTCP BYE, transport closed, receiver stopped) arrives as `put(None)`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters


class FrameSink(Protocol):
    """Receives `(codec, frame)` for every complete encoded frame, then `None` when the track ends."""

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None: ...


class _NoDecoderThread:
    """Stands where aiortc keeps its decoder thread: truthy while frames should flow; join() is free."""

    def join(self) -> None:
        return None


class EncodedFrameReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver that hands encoded frames to `sink` and never decodes."""

    sink: FrameSink

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        # Mirrors RTCRtpReceiver.receive without starting the decoder thread: the receiver puts
        # `(codec, frame)` on its "decoder queue" while its "decoder thread" is set, and
        # `None` when it stops; both are ours.
        if self._RTCRtpReceiver__started:  # type: ignore[attr-defined]
            return
        codecs = self._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        for encoding in parameters.encodings:
            if encoding.rtx:
                self._RTCRtpReceiver__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc  # type: ignore[attr-defined]
        self._RTCRtpReceiver__decoder_queue = self.sink
        self._RTCRtpReceiver__decoder_thread = _NoDecoderThread()
        self.transport._register_rtp_receiver(self, parameters)
        self._RTCRtpReceiver__rtcp_task = asyncio.ensure_future(self._run_rtcp())
        self._RTCRtpReceiver__started = True


def tap(receiver: RTCRtpReceiver, sink: FrameSink) -> EncodedFrameReceiver:
    """Make a receiver that has not started yet deliver encoded frames to sink."""
    receiver.__class__ = EncodedFrameReceiver
    assert isinstance(receiver, EncodedFrameReceiver)
    receiver.sink = sink
    return receiver
