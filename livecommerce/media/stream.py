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


def resource_id(node_id: str) -> str:
    """A WHIP or WHEP session id that names its node, so any node can route a request for it."""
    return f"{node_id}.{secrets.token_urlsafe(16)}"


def node_of(resource: str) -> str:
    """The node that holds a session resource (`resource_id`)."""
    return resource.rpartition(".")[0]


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
    id: str
    receivers: dict[str, EncodedFrameReceiver] = field(default_factory=dict)
    relay_of: str | None = None  # the node this edge pulls the stream from, for a relay


@dataclass(eq=False)
class Viewer:
    """A WHEP session: one viewer's peer connection and its legs (one per published track)."""

    pc: RTCPeerConnection
    legs: dict[str, RtpLeg]
    id: str
    relay: bool = False  # another node pulling the stream for its own viewers


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
    """A room's broadcast on this node. On the room's origin node it is fed by the publisher and
    records the broadcast; on an edge it is fed by a relay from another node (`Publisher.relay_of`)
    and records nothing. A stream changes role when the publisher moves between nodes."""

    def __init__(
        self,
        broadcasts: Broadcasts,
        room_id: int,
        codecs: dict[str, RTCRtpCodecParameters],
        broadcast: Broadcast | None,
        *,
        node_id: str,
        grace_seconds: float,
        on_ended: Callable[[Stream], None],
        on_source_lost: Callable[[Stream], None] | None = None,
        on_recorded: Callable[[Stream], None] | None = None,
    ) -> None:
        self.broadcasts = broadcasts
        self.room_id = room_id
        self.codecs = codecs
        self.broadcast = broadcast
        self.node_id = node_id
        self.origin_node = node_id
        self.hls_elsewhere: str | None = None  # the node making HLS, when the broadcast began there
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
        self.last_viewer = time.monotonic()
        self.resumes = 0
        self._on_ended = on_ended
        self._on_source_lost = on_source_lost
        self._on_recorded = on_recorded
        self.media_seen = False
        self._grace_timer: asyncio.TimerHandle | None = None
        self._watchdog = asyncio.ensure_future(self._watch())
        self._ending: asyncio.Task[None] | None = None
        self._recording: asyncio.Future[None] | None = None  # the broadcast's start, once media flows

    @property
    def is_origin(self) -> bool:
        return self.broadcast is not None

    def adopt(self, session_id: int | None, started_at: datetime | None) -> None:
        """Carry on a broadcast that another node recorded (the publisher moved here, or this edge
        keeps its viewers): the same stream session, not recorded again."""
        if session_id is None:
            return
        self.session_id, self.started_at = session_id, started_at
        if self._recording is None:
            self._recording = asyncio.get_running_loop().create_future()
            self._recording.set_result(None)

    def become_origin(self, broadcast: Broadcast) -> None:
        """The publisher is now on this node (it records and announces from now on)."""
        self.broadcast = broadcast
        self.origin_node = self.node_id

    def become_edge(self, origin_node: str) -> None:
        """Another node took the publisher: this stream now only forwards what it relays."""
        self.broadcast = None
        self.origin_node = origin_node
        self.last_publisher = None
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    @property
    def codec_names(self) -> dict[str, str]:
        return {kind: codec.mimeType.split("/", 1)[1] for kind, codec in self.codecs.items()}

    def summary(self) -> dict[str, object]:
        relays = sum(1 for viewer in self.viewers.values() if viewer.relay)
        return {
            "room_id": self.room_id,
            "stream_session_id": self.session_id,
            "state": self.state,
            "video_codec": self.codec_names.get("video"),
            "audio_codec": self.codec_names.get("audio"),
            "origin": self.origin_node,
            "node": self.node_id,
            "relayed_from": None if self.publisher is None else self.publisher.relay_of,
            "viewers": len(self.viewers) - relays,
            "relays": relays,
            "keyframe_requests": self.keyframes.sent,
            "started_at": iso(self.started_at),
        }

    # publishers

    def attach(self, publisher: Publisher) -> None:
        """Make publisher the current one: a first start, a resume within grace, or a takeover."""
        previous = self.publisher
        resumed = self.state in ("grace", "reconnecting") or previous is not None
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
        if self.is_origin and self._recording is None:
            self._recording = asyncio.ensure_future(self._record_start())

    async def _record_start(self) -> None:
        try:
            self.session_id, self.started_at = await self.broadcasts.record_start(
                self.broadcast, self.codec_names
            )
            if self._on_recorded is not None:
                self._on_recorded(self)
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
        if publisher.relay_of is not None:
            log.info("room %s: relay from %s lost (%s)", self.room_id, publisher.relay_of, reason)
            self.detach()
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

    def detach(self) -> None:
        """An edge lost what fed it (its source went away, or this node stopped being the origin):
        viewers keep their connections while the node looks for the stream elsewhere."""
        publisher, self.publisher = self.publisher, None
        self.keyframes.attach(None)
        self.state = "reconnecting"
        if publisher is not None:
            background(publisher.pc.close())
        if self._on_source_lost is not None:
            self._on_source_lost(self)

    def replaceable_by(self, stream_key_id: int) -> bool:
        """Whether a publisher with this stream key may replace the current one without asking
        to take over: there is none (grace), it is the same key holder reconnecting, or the current
        publisher has sent nothing for SILENT_AFTER (its network is gone, it just does not know)."""
        current = self.publisher
        if current is None or current.relay_of is not None or current.stream_key_id == stream_key_id:
            return True
        timeout = SILENT_AFTER if self.media_seen else CONNECT_TIMEOUT
        return time.monotonic() - self.last_media > timeout

    def is_publisher(self, publisher: Publisher) -> bool:
        """Whether a DELETE on this publisher's resource ends the broadcast."""
        return publisher is self.publisher or (self.state == "grace" and publisher is self.last_publisher)

    # viewers

    def add_viewer(self, pc: RTCPeerConnection, *, relay: bool = False) -> Viewer:
        legs = {kind: fanout.add_viewer() for kind, fanout in self.fanouts.items()}
        viewer = Viewer(pc, legs, resource_id(self.node_id), relay)
        self.viewers[viewer.id] = viewer
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        if self.viewers.pop(viewer.id, None) is None:
            return
        self.last_viewer = time.monotonic()
        for kind, leg in viewer.legs.items():
            self.fanouts[kind].remove_viewer(leg)
        background(viewer.pc.close())

    # the end

    def end_soon(self, reason: str) -> None:
        if self._ending is None:
            self._ending = asyncio.ensure_future(self.end(reason))

    async def end(self, reason: str, *, record: bool | None = None) -> None:
        """Close every connection; the origin (or, with `record`, an edge whose origin died)
        records the end and tells the room, once across the cluster."""
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
        if record if record is not None else self.is_origin:
            try:
                if self.session_id is not None and await self.broadcasts.record_end(
                    self.room_id, self.session_id, reason
                ):
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
                if publisher.relay_of is not None:
                    # a relay's source may be in its own grace period (silent, still connected);
                    # the node notices a source that died through the registry
                    if publisher.pc.connectionState in ("failed", "closed"):
                        self.publisher_lost(publisher, publisher.pc.connectionState)
                    continue
                timeout = MEDIA_TIMEOUT if self.media_seen else CONNECT_TIMEOUT
                silent = time.monotonic() - self.last_media > timeout
                if silent or publisher.pc.connectionState in ("failed", "closed"):
                    self.publisher_lost(publisher, "silent" if silent else publisher.pc.connectionState)
