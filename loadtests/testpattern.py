"""A synthetic publisher and viewer in Python, for trying a room without a camera, for the tests
and for the load test.

The publisher sends a moving test pattern and a tone, each encoded once here with PyAV and
handed to aiortc as pre-encoded packets (so its own encoders never run); the viewer takes the
encoded frames off its receivers like the server does and decodes them with PyAV when asked, or,
to be cheap enough for load tests by the hundred, only counts its RTP (`RtpCounter`). Every video frame
carries the wall-clock time at which it was captured, drawn as a row of black and white blocks
that survive lossy coding; `capture_time_ms` reads it back from a decoded frame, which gives the
glass-to-glass latency at a viewer.

Test tooling, not part of the server (it needs numpy): the load tests import it from this folder
and the test suite has this folder on its path.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import re
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
import pylibsrtp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtp import RtcpPacket, RtcpSrPacket, is_rtcp
from aiortc.sdp import SessionDescription

from livecommerce.media import ice
from livecommerce.media.aiortc_internals import on_datagrams, on_keyframe_request, receiving_srtp, tap
from livecommerce.media.keyframes import is_keyframe

VIDEO_CLOCK = 90_000
STAMP_BITS = 44  # milliseconds since the epoch fit in 44 bits until the year 2527
MIN_STAMP_BLOCK = 8  # pixels per bit at least; the stamp is one row of blocks across the top
CODECS = {"vp8": "libvpx", "h264": "libx264"}


class PatternVideoTrack(MediaStreamTrack):
    """A moving pattern with a capture timestamp, as encoded packets at a steady frame rate."""

    kind = "video"

    def __init__(
        self,
        *,
        width: int = 640,
        height: int = 360,
        fps: int = 30,
        bitrate: int = 1_000_000,
        codec: str = "vp8",
    ) -> None:
        super().__init__()
        if width < STAMP_BITS * MIN_STAMP_BLOCK:
            raise ValueError(f"width must be at least {STAMP_BITS * MIN_STAMP_BLOCK} to carry the timestamp")
        self.width, self.height, self.fps = width, height, fps
        self.frames = 0
        self.keyframes = 0
        self._force_keyframe = True
        self._encoder = av.CodecContext.create(CODECS[codec], "w")
        self._encoder.width, self._encoder.height = width, height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._encoder.framerate = fractions.Fraction(fps, 1)
        self._encoder.bit_rate = bitrate
        self._encoder.gop_size = fps * 10
        if codec == "vp8":
            self._encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        else:
            self._encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
        self._start: float | None = None
        self._pending: list[av.Packet] = []
        y = np.arange(height, dtype=np.uint16)[:, None]
        x = np.arange(width, dtype=np.uint16)[None, :]
        self._base = ((x + y) % 256).astype(np.uint8)

    def request_keyframe(self) -> None:
        self._force_keyframe = True

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        while not self._pending:
            if self._start is None:
                self._start = time.monotonic()
            due = self._start + self.frames / self.fps
            # always yield, even when behind: a publisher that cannot encode in real time on a busy
            # machine would otherwise never let its event loop (signalling, RTCP) run
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            self._pending = self._encode()
        return self._pending.pop(0)

    def _encode(self) -> list[av.Packet]:
        index = self.frames
        self.frames += 1
        luma = self._base.copy()
        bar = (index * 8) % self.width
        luma[:, bar : bar + 24] = 235
        stamp_time_ms(luma, int(time.time() * 1000))
        chroma = np.full((self.height // 2, self.width // 2), 128, dtype=np.uint8)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (luma, chroma, chroma), strict=True):
            _fill_plane(plane, data)
        frame.pts = index * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        if self._force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
            self._force_keyframe = False
            self.keyframes += 1
        return list(self._encoder.encode(frame))


class ToneAudioTrack(MediaStreamTrack):
    """A 440 Hz tone as Opus packets, 20 ms each."""

    kind = "audio"
    RATE = 48_000
    SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = self.RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "s16"
        self._encoder.bit_rate = 64_000
        self._encoder.time_base = fractions.Fraction(1, self.RATE)
        self._start: float | None = None
        self._pending: list[av.Packet] = []

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        while not self._pending:
            if self._start is None:
                self._start = time.monotonic()
            await asyncio.sleep(
                max(0.0, self._start + self.frames * self.SAMPLES / self.RATE - time.monotonic())
            )
            t = (np.arange(self.SAMPLES) + self.frames * self.SAMPLES) / self.RATE
            wave = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(wave, 2)[None, :], format="s16", layout="stereo")
            frame.sample_rate = self.RATE
            frame.pts = self.frames * self.SAMPLES
            frame.time_base = fractions.Fraction(1, self.RATE)
            self.frames += 1
            self._pending = list(self._encoder.encode(frame))
        return self._pending.pop(0)


def _fill_plane(plane: av.video.plane.VideoPlane, data: np.ndarray) -> None:
    height, width = data.shape
    if plane.line_size == width:
        plane.update(data.tobytes())
    else:
        padded = np.zeros((height, plane.line_size), dtype=np.uint8)
        padded[:, :width] = data
        plane.update(padded.tobytes())


def stamp_time_ms(luma: np.ndarray, value: int) -> None:
    """Draw `value` as STAMP_BITS blocks (black 0, white 1) across the top of a luma plane."""
    block = stamp_block(luma.shape[1])
    for bit in range(STAMP_BITS):
        on = (value >> (STAMP_BITS - 1 - bit)) & 1
        luma[:block, bit * block : (bit + 1) * block] = 235 if on else 16


def stamp_block(width: int) -> int:
    return width // STAMP_BITS


def capture_time_ms(frame: av.VideoFrame) -> int:
    """Read the capture time back from a decoded frame (block centres, thresholded)."""
    luma = frame.to_ndarray(format="gray")
    block = stamp_block(frame.width)
    half = block // 2
    value = 0
    for bit in range(STAMP_BITS):
        centre = luma[half - 2 : half + 2, bit * block + half - 2 : bit * block + half + 2]
        value = (value << 1) | int(centre.mean() > 128)
    return value


def keyframes_on_request(pc: RTCPeerConnection, track: PatternVideoTrack) -> None:
    """aiortc's sender answers PLI/FIR by flagging its own encoder; route it to the pattern's."""
    for transceiver in pc.getTransceivers():
        if transceiver.sender.track is track:
            on_keyframe_request(transceiver.sender, track.request_keyframe)


async def exchange(
    http: aiohttp.ClientSession,
    url: str,
    pc: RTCPeerConnection,
    host_addresses: Sequence[str],
    token: str | None,
    rewrite_offer: Callable[[str], str] | None = None,
) -> str:
    """Send the offer (every candidate gathered; `rewrite_offer` may change it on the way, to play
    another client's SDP), apply the answer, return the session URL."""
    ice.pin_gathering(pc, host_addresses)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    offer = pc.localDescription.sdp
    if rewrite_offer is not None:
        offer = rewrite_offer(offer)
    async with http.post(url, data=offer, headers=headers) as response:
        if response.status != 201:
            raise SignallingError(response.status, await response.text())
        answer = await response.text()
        location = str(response.url.join(aiohttp.client.URL(response.headers["Location"])))
    await pc.setRemoteDescription(
        RTCSessionDescription(sdp=ice.scope_candidates(answer, host_addresses), type="answer")
    )
    return location


def prefer_h264(offer: str) -> str:
    """An offer whose video formats list H.264 before VP8, as the studio page offers (an H.264 live
    is also served over HLS): pass as `rewrite_offer` to `publish`."""
    h264 = set(re.findall(r"a=rtpmap:(\d+) H264/90000", offer))

    def reorder(match: re.Match[str]) -> str:
        return match.group(1) + " ".join(sorted(match.group(2).split(), key=lambda pt: pt not in h264))

    return re.sub(r"(m=video \d+ \S+ )([\d ]+)", reorder, offer)


class SignallingError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Publisher:
    pc: RTCPeerConnection
    location: str
    video: PatternVideoTrack | None
    audio: ToneAudioTrack | None


async def publish(
    http: aiohttp.ClientSession,
    whip_url: str,
    stream_key: str,
    *,
    host_addresses: Sequence[str] = ("127.0.0.1",),
    ice_servers: Sequence[dict[str, Any]] = (),
    video: PatternVideoTrack | None = None,
    audio: ToneAudioTrack | None = None,
    rewrite_offer: Callable[[str], str] | None = None,
) -> Publisher:
    pc = RTCPeerConnection(ice.configuration(ice_servers))
    for track in (video, audio):
        if track is not None:
            pc.addTransceiver(track, direction="sendonly")
    if video is not None:
        keyframes_on_request(pc, video)
    try:
        location = await exchange(http, whip_url, pc, host_addresses, stream_key, rewrite_offer)
    except BaseException:
        await pc.close()
        raise
    return Publisher(pc, location, video, audio)


DECODERS = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
_SEQ_TIMESTAMP_SSRC = struct.Struct("!HII")


@dataclass
class RtpStream:
    """What one viewer received of one SSRC: extended sequence numbers, jumps, the latest timestamp."""

    kind: str
    first: int
    highest: int
    received: int = 0
    jumps: int = 0  # packets whose sequence number did not follow the previous one
    timestamp: int = 0
    arrived: float = 0.0  # time.time() of the latest packet

    @property
    def lost(self) -> int:
        return max(0, self.highest - self.first + 1 - self.received)


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp: int
    rtp_timestamp: int
    arrived: float  # time.time()


class RtpCounter:
    """Counts a viewer's media without aiortc's receive path: each SRTP packet is unprotected and
    only its header read (sequence numbers for loss, the marker bit ends a video frame); sender
    reports are kept. Media payload types come from the answer; RTX is not counted."""

    def __init__(self, viewer: Viewer, answer: str) -> None:
        self.viewer = viewer
        self.kinds = {
            codec.payloadType: media.kind
            for media in SessionDescription.parse(answer).media
            for codec in media.rtp.codecs
            if not is_rtx(codec)
        }
        self.streams: dict[int, RtpStream] = {}
        self.sender_reports: deque[SenderReport] = deque(maxlen=100)

    def datagram(self, data: bytes) -> bool:
        """Take an SRTP or SRTCP datagram (True), leave anything else (DTLS) to aiortc."""
        srtp = receiving_srtp(self.viewer.pc)
        if srtp is None or len(data) < 12 or not 127 < data[0] < 192:
            return False
        try:
            if is_rtcp(data):
                self._rtcp(srtp.unprotect_rtcp(data))
            else:
                self._rtp(srtp.unprotect(data))
        except (pylibsrtp.Error, ValueError):
            pass
        return True

    def _rtp(self, packet: bytes) -> None:
        kind = self.kinds.get(packet[1] & 0x7F)
        if kind is None:
            return
        seq, timestamp, ssrc = _SEQ_TIMESTAMP_SSRC.unpack_from(packet, 2)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = RtpStream(kind, seq, seq - 1)
        delta = (seq - stream.highest) & 0xFFFF
        if delta != 1:
            stream.jumps += 1
        if delta < 0x8000:
            stream.highest += delta
        stream.received += 1
        stream.timestamp, stream.arrived = timestamp, time.time()
        if kind == "audio":
            self.viewer.audio_frames += 1
        elif packet[1] & 0x80:
            self.viewer.video_frames += 1

    def _rtcp(self, data: bytes) -> None:
        now = time.time()
        for packet in RtcpPacket.parse(data):
            if isinstance(packet, RtcpSrPacket):
                info = packet.sender_info
                self.sender_reports.append(
                    SenderReport(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp, now)
                )

    def totals(self, kind: str) -> tuple[int, int]:
        """Packets received and lost of one kind, over all its SSRCs."""
        streams = [stream for stream in self.streams.values() if stream.kind == kind]
        return sum(s.received for s in streams), sum(s.lost for s in streams)


@dataclass
class Viewer:
    """A WHEP viewer that takes the encoded frames off its receivers (no aiortc decoder thread),
    keeps count, and decodes them itself when asked to (sizes, first-frame keyframe, latency)."""

    pc: RTCPeerConnection
    decode: bool = True
    measure_latency: bool = False
    location: str = ""
    video_frames: int = 0
    audio_frames: int = 0
    decode_errors: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_frame_keyframe: bool | None = None
    latencies_ms: list[float] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    rtp: RtpCounter | None = None  # set for a counting viewer
    _decoders: dict[str, av.CodecContext] = field(default_factory=dict)

    def sink(self, kind: str) -> _ViewerSink:
        return _ViewerSink(self, kind)

    def frame(self, kind: str, codec: RTCRtpCodecParameters, data: bytes, timestamp: int) -> None:
        if kind == "video":
            if self.first_frame_keyframe is None:
                self.first_frame_keyframe = is_keyframe(codec.mimeType, data)
            self.video_frames += 1
        else:
            self.audio_frames += 1
        if not self.decode:
            return
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = av.CodecContext.create(DECODERS[codec.mimeType.lower()], "r")
        try:
            frames = decoder.decode(av.Packet(data))
        except av.FFmpegError:
            self.decode_errors += 1
            return
        for decoded in frames:
            if kind == "video":
                self.sizes.add((decoded.width, decoded.height))
                if self.measure_latency:
                    self.latencies_ms.append(time.time() * 1000 - capture_time_ms(decoded))

    async def close(self) -> None:
        await self.pc.close()


class _ViewerSink:
    def __init__(self, viewer: Viewer, kind: str) -> None:
        self.viewer = viewer
        self.kind = kind

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            self.viewer.ended.set()
            return
        codec, frame = item
        self.viewer.frame(self.kind, codec, frame.data, frame.timestamp)


async def play(
    http: aiohttp.ClientSession,
    whep_url: str,
    *,
    host_addresses: Sequence[str] = ("127.0.0.1",),
    ice_servers: Sequence[dict[str, Any]] = (),
    decode: bool = True,
    measure_latency: bool = False,
    count_only: bool = False,
    rewrite_offer: Callable[[str], str] | None = None,
    video_codecs: Sequence[RTCRtpCodecCapability] = (),
) -> Viewer:
    """A viewer that decodes (`decode`, `measure_latency`), or with `count_only` one that only
    counts its RTP (`Viewer.rtp`) and never lets aiortc see a media packet. `video_codecs`
    limits the video codecs it offers (default: all of aiortc's)."""
    pc = RTCPeerConnection(ice.configuration(ice_servers))
    viewer = Viewer(pc, decode=decode, measure_latency=measure_latency)
    for kind in ("video", "audio"):
        transceiver = pc.addTransceiver(kind, direction="recvonly")
        if kind == "video" and video_codecs:
            transceiver.setCodecPreferences(list(video_codecs))
        tap(transceiver.receiver, viewer.sink(kind))
    try:
        viewer.location = await exchange(http, whep_url, pc, host_addresses, None, rewrite_offer)
    except BaseException:
        await pc.close()
        raise
    if count_only:
        # Installed before this coroutine yields: DTLS, hence media, cannot have started yet.
        viewer.rtp = RtpCounter(viewer, pc.remoteDescription.sdp)
        on_datagrams(pc, viewer.rtp.datagram)
    return viewer
