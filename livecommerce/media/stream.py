"""A room's broadcast on this node: the current publisher (or a gap within the grace period), one
fanout per published track, the keyframe relay, the viewers, and the broadcast's lifecycle.

States: `live` (a publisher is attached), `grace` (the publisher dropped; viewers keep their
tracks for `publisher_grace_seconds` while a publisher with a key for the room may resume), and
`ended` (recorded, announced, every viewer's connection closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.media.aiortc_internals import EncodedFrameReceiver
from livecommerce.media.broadcasts import Broadcast, Broadcasts
from livecommerce.media.forwarder import Fanout
from livecommerce.media.keyframes import KeyframeRelay
from livecommerce.media.rtp_leg import RtpLeg
from livecommerce.media.tasks import background
from livecommerce.realtime import event_types
from livecommerce.timestamps import iso

log = logging.getLogger(__name__)

MEDIA_TIMEOUT = 5.0  # seconds without a frame from a connected publisher before it counts as dropped
CONNECT_TIMEOUT = 15.0  # seconds for a new publisher to deliver its first frame
# A publisher without media this long may be replaced by any key of the room: a frame interval is
# tens of milliseconds and audio comes every 20 ms, so 1.5 s of nothing is a dead uplink, not
# jitter.
SILENT_AFTER = 1.5
WATCH_INTERVAL = 0.5


def resource_id() -> str:
    return secrets.token_urlsafe(16)


class Output(Protocol):
    """Another consumer of the published frames besides the viewers (HLS, see hls.py): each frame
    as forwarded, with its timestamp on the track's continuous clock, then close() at the end."""

    def frame(self, kind: str, data: bytes, timestamp: int) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False)
class Publisher:
    """A WHIP session: one publisher's peer connection and its tapped receivers."""

    pc: RTCPeerConnection
    stream_key_id: int | None
    codecs: dict[str, RTCRtpCodecParameters]
    id: str = field(default_factory=resource_id)
    receivers: dict[str, EncodedFrameReceiver] = field(default_factory=dict)


@dataclass(eq=False)
class Viewer:
    """A WHEP session: one viewer's peer connection and its legs (one per published track)."""

    pc: RTCPeerConnection
    legs: dict[str, RtpLeg]
    id: str = field(default_factory=resource_id)


class PublisherSink:
    """Where a publisher's tapped receiver delivers frames: forwarded only while that publisher is
    the stream's current one; the end of its track means the publisher dropped."""

    def __init__(self, stream: Stream, publisher: Publisher, kind: str) -> None:
        self.stream = stream
        self.publisher = publisher
        self.kind = kind

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if self.stream.publisher is not self.publisher:
            return
        if item is None:
            self.stream.publisher_lost(self.publisher, "track_ended")
            return
        self.stream.last_media = time.monotonic()
        if not self.stream.media_seen:
            self.stream.media_seen = True
            self.stream.media_started()
        fanout = self.stream.fanouts.get(self.kind)
        if fanout is not None:
            timestamp = fanout.push(item[1].data, item[1].timestamp)
            for output in self.stream.outputs:
                output.frame(self.kind, item[1].data, timestamp)


class Stream:
    def __init__(
        self,
        broadcasts: Broadcasts,
        room_id: int,
        codecs: dict[str, RTCRtpCodecParameters],
        broadcast: Broadcast,
        *,
        grace_seconds: float,
        on_ended: Callable[[Stream], None],
    ) -> None:
        self.broadcasts = broadcasts
        self.room_id = room_id
        self.codecs = codecs
        self.broadcast = broadcast
        self.grace_seconds = grace_seconds
        self.keyframes = KeyframeRelay()
        self.fanouts = {
            kind: Fanout(kind, codec, self.keyframes if kind == "video" else None)
            for kind, codec in codecs.items()
        }
        self.state = "live"
        self.publisher: Publisher | None = None
        self.last_publisher: Publisher | None = None
        self.viewers: dict[str, Viewer] = {}
        self.outputs: list[Output] = []
        self.session_id: int | None = None
        self.started_at: datetime | None = None
        self.last_media = time.monotonic()
        self.resumes = 0
        self._on_ended = on_ended
        self.media_seen = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._watchdog = asyncio.ensure_future(self._watch())
        self._ending: asyncio.Task[None] | None = None
        self._recording: asyncio.Task[None] | None = None  # the broadcast's start, once media flows

    @property
    def codec_names(self) -> dict[str, str]:
        return {kind: codec.mimeType.split("/", 1)[1] for kind, codec in self.codecs.items()}

    def summary(self) -> dict[str, object]:
        return {
            "room_id": self.room_id,
            "stream_session_id": self.session_id,
            "state": self.state,
            "video_codec": self.codec_names.get("video"),
            "audio_codec": self.codec_names.get("audio"),
            "viewers": len(self.viewers),
            "keyframe_requests": self.keyframes.sent,
            "started_at": iso(self.started_at),
        }

    # publishers

    def attach(self, publisher: Publisher) -> None:
        """Make publisher the current one: a first start, a resume within grace, or a takeover."""
        previous = self.publisher
        resumed = self.state == "grace" or previous is not None
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        self.publisher = publisher
        self.last_publisher = publisher
        self.state = "live"
        self.last_media = time.monotonic()
        self.media_seen = False
        self.keyframes.attach(publisher.receivers.get("video"))
        if resumed:
            self.resumes += 1
            for fanout in self.fanouts.values():
                fanout.new_source()
        if previous is not None:
            background(previous.pc.close())

    def media_started(self) -> None:
        """The current publisher's first frame: the broadcast starts (once per stream)."""
        if self._recording is None:
            self._recording = asyncio.ensure_future(self._record_start())

    async def _record_start(self) -> None:
        try:
            self.session_id, self.started_at = await self.broadcasts.record_start(
                self.broadcast, self.codec_names
            )
            live = {
                "stream_session_id": self.session_id,
                **{f"{kind}_codec": name for kind, name in self.codec_names.items()},
            }
            await self.broadcasts.announce(self.room_id, event_types.STREAM_LIVE, live)
        except Exception:
            log.exception("room %s: could not record the start of the stream", self.room_id)
            self.end_soon("failed")

    def publisher_lost(self, publisher: Publisher, reason: str) -> None:
        """The current publisher dropped: keep viewers for the grace period, then end. A stream
        whose broadcast never started (no media ever arrived) ends at once, unrecorded."""
        if publisher is not self.publisher or self.state != "live":
            return
        if self._recording is None:
            log.info("room %s: publisher lost (%s) before any media", self.room_id, reason)
            self.end_soon("publisher_lost")
            return
        log.info("room %s: publisher lost (%s); grace %.1fs", self.room_id, reason, self.grace_seconds)
        self.publisher = None
        self.keyframes.attach(None)
        self.state = "grace"
        background(publisher.pc.close())
        self._grace_timer = asyncio.get_running_loop().call_later(
            self.grace_seconds, self.end_soon, "publisher_lost"
        )

    def replaceable_by(self, stream_key_id: int) -> bool:
        """Whether a publisher with this stream key may replace the current one without asking
        to take over: there is none (grace), it is the same key holder reconnecting, or the current
        publisher has sent nothing for SILENT_AFTER (its network is gone, it just does not know)."""
        current = self.publisher
        if current is None or current.stream_key_id == stream_key_id:
            return True
        timeout = SILENT_AFTER if self.media_seen else CONNECT_TIMEOUT
        return time.monotonic() - self.last_media > timeout

    def is_publisher(self, publisher: Publisher) -> bool:
        """Whether a DELETE on this publisher's resource ends the broadcast."""
        return publisher is self.publisher or (self.state == "grace" and publisher is self.last_publisher)

    # viewers

    def add_viewer(self, pc: RTCPeerConnection) -> Viewer:
        legs = {kind: fanout.add_viewer() for kind, fanout in self.fanouts.items()}
        viewer = Viewer(pc, legs)
        self.viewers[viewer.id] = viewer
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        if self.viewers.pop(viewer.id, None) is None:
            return
        for kind, leg in viewer.legs.items():
            self.fanouts[kind].remove_viewer(leg)
        background(viewer.pc.close())

    # the end

    def end_soon(self, reason: str) -> None:
        if self._ending is None:
            self._ending = asyncio.ensure_future(self.end(reason))

    async def end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        log.info("room %s: stream ended (%s)", self.room_id, reason)
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        self._watchdog.cancel()
        self.keyframes.close()
        publisher, self.publisher = self.publisher, None
        for fanout in self.fanouts.values():
            fanout.close()
        for output in self.outputs:
            output.close()
        closing = [viewer.pc.close() for viewer in self.viewers.values()]
        if publisher is not None:
            closing.append(publisher.pc.close())
        self.viewers.clear()
        self._on_ended(self)
        await asyncio.gather(*closing, return_exceptions=True)
        if self._recording is not None:
            await asyncio.gather(self._recording, return_exceptions=True)  # a start still being written
        if self.session_id is not None:
            try:
                await self.broadcasts.record_end(self.room_id, self.session_id, reason)
                await self.broadcasts.announce(
                    self.room_id,
                    event_types.STREAM_ENDED,
                    {"stream_session_id": self.session_id, "reason": reason},
                )
            except Exception:
                log.exception("room %s: could not record the end of the stream", self.room_id)

    async def _watch(self) -> None:
        """Notice a publisher that is connected but silent (a dead uplink sends no RTCP BYE)."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(WATCH_INTERVAL)
                publisher = self.publisher
                if publisher is None or self.state != "live":
                    continue
                timeout = MEDIA_TIMEOUT if self.media_seen else CONNECT_TIMEOUT
                silent = time.monotonic() - self.last_media > timeout
                if silent or publisher.pc.connectionState in ("failed", "closed"):
                    self.publisher_lost(publisher, "silent" if silent else publisher.pc.connectionState)
