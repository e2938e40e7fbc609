"""LL-HLS output of a live: the publisher's H.264 and Opus frames, as the stream forwards them,
remuxed (never re-encoded) into CMAF segments and parts that any HTTP cache or CDN can serve.

`HlsOutput` is one stream's output (a frame sink the Stream calls); `Hls` keeps this node's
outputs by room and answers `GET /hls/{room_id}/index.m3u8` (with blocking reload) and the
segments, parts and init segment under `/hls/{room_id}/{stream_session_id}/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from livecommerce.errors import AppError
from livecommerce.http import file_id
from livecommerce.media import h264, llhls
from livecommerce.media.cmaf import AUDIO_CLOCK, VIDEO_CLOCK, CmafMuxer, Fragment
from livecommerce.media.keyframes import is_keyframe

if TYPE_CHECKING:
    from livecommerce.media.node import MediaNode
    from livecommerce.media.stream import Stream

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp4"
IMMUTABLE = "public, max-age=31536000, immutable"
KEEP_ENDED_SECONDS = 60.0  # an ended live's playlist (with EXT-X-ENDLIST) stays this long
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Age, Date"}
_WRAP = 1 << 32


class SegmentListener(Protocol):
    """Told about each completed segment of an output, and about its end (recording)."""

    def segment(self, output: HlsOutput, segment: llhls.Segment) -> None: ...

    def ended(self, output: HlsOutput) -> None: ...


class _Track:
    """One track's fanout timestamps (32-bit RTP, continuous across publishers) unwrapped and
    placed on the output's timeline, which starts at the first keyframe."""

    def __init__(self, clock: int) -> None:
        self.clock = clock
        self.base: int | None = None  # extended timestamp at media time 0
        self.last_raw: int | None = None
        self.extended = 0
        self.last_pts = -1

    def unwrap(self, raw: int) -> int:
        if self.last_raw is not None:
            delta = (raw - self.last_raw) % _WRAP
            self.extended += delta - _WRAP if delta >= _WRAP // 2 else delta
        else:
            self.extended = raw
        self.last_raw = raw
        return self.extended


class HlsOutput:
    """One H.264 stream's LL-HLS output."""

    def __init__(self, stream: Stream, layout: llhls.Layout, window: int) -> None:
        self.stream = stream
        self.room_id = stream.room_id
        self.has_audio = "audio" in stream.codecs
        self.layout = layout
        self.playlist = llhls.LivePlaylist(layout, window)
        self.init: bytes | None = None
        self.listeners: list[SegmentListener] = []
        self.fragments = 0
        self._muxer: CmafMuxer | None = None
        self._tracks = {"video": _Track(VIDEO_CLOCK), "audio": _Track(AUDIO_CLOCK)}
        self._origin: float | None = None  # monotonic time of the first keyframe
        self._origin_wall: datetime | None = None
        self._elapsed = 0.0  # media seconds muxed into fragments so far
        self._last_keyframe = 0
        self._publisher: object = None  # the stream's publisher whose frames come in
        self._awaiting_keyframe = False
        self._changed = asyncio.Event()
        self.closed = False

    @property
    def session_id(self) -> int | None:
        return self.stream.session_id

    @property
    def started_at(self) -> datetime | None:
        """Wall-clock time of the first frame (time 0 of the segments), once it has come."""
        return self._origin_wall

    # frames in (the Stream calls these)

    def frame(self, kind: str, data: bytes, timestamp: int) -> None:
        if self.closed:
            return
        try:
            self._frame(kind, data, timestamp)
        except Exception:
            # HLS is a copy of the live: whatever goes wrong here, the live and its WebRTC
            # viewers go on; the HLS playlist ends
            log.exception("room %s: the HLS output failed and stops", self.room_id)
            self.close()

    def _frame(self, kind: str, data: bytes, timestamp: int) -> None:
        track = self._tracks.get(kind)
        if track is None:
            return
        extended = track.unwrap(timestamp)
        now = time.monotonic()
        keyframe = True  # every Opus packet stands alone
        if self.stream.publisher is not self._publisher:
            # a resume or a takeover: the new publisher's pictures refer to none of the old ones
            self._publisher = self.stream.publisher
            self._awaiting_keyframe = True
        if kind == "video":
            keyframe = is_keyframe("video/h264", data)
            if self._muxer is None and not self._start(data, keyframe, now):
                return
            if self._awaiting_keyframe and not keyframe:
                self.stream.keyframes.request()
                return
            self._awaiting_keyframe = False
            if track.base is None:
                track.base = extended
            pts = extended - track.base
            if keyframe:
                self._last_keyframe = pts
            elif pts - self._last_keyframe >= self.layout.segment_seconds * VIDEO_CLOCK:
                self.stream.keyframes.request()  # a segment can only end at a keyframe
        else:
            if self._origin is None:
                return  # audio before the first keyframe is not played
            if track.base is None:
                track.base = extended - round((now - self._origin) * AUDIO_CLOCK)
            pts = extended - track.base
        if pts <= track.last_pts:
            return
        track.last_pts = pts
        assert self._muxer is not None
        self._take(self._muxer.write(kind, data, pts, keyframe))

    def close(self) -> None:
        """The stream ended: the last fragments, the end of the playlist."""
        if self.closed:
            return
        self.closed = True
        if self._muxer is not None:
            try:
                self._take(self._muxer.close())
            except Exception:
                log.exception("room %s: could not finish the HLS output", self.room_id)
        completed = self.playlist.end()
        if completed is not None:
            self._completed(completed)
        for listener in self.listeners:
            listener.ended(self)
        self._notify()

    def _start(self, data: bytes, keyframe: bool, now: float) -> bool:
        """Open the muxer on the first keyframe that carries its SPS (the picture size)."""
        sps = h264.sequence_parameter_set(data) if keyframe else None
        if sps is None:
            self.stream.keyframes.request()
            return False
        try:
            width, height = h264.picture_size(sps)
        except ValueError as exc:
            log.warning("room %s: no HLS for this keyframe: %s", self.room_id, exc)
            return False
        self._muxer = CmafMuxer(
            width, height, audio=self.has_audio, fragment_seconds=self.layout.part_seconds
        )
        self._origin = now
        self._origin_wall = datetime.now(UTC)
        return True

    def _take(self, fragments: list[Fragment]) -> None:
        if self.init is None and self._muxer is not None:
            self.init = self._muxer.init
        for fragment in fragments:
            assert self._origin_wall is not None
            started_at = self._origin_wall + timedelta(seconds=self._elapsed)
            self._elapsed += fragment.duration
            self.fragments += 1
            part = llhls.Part(fragment.data, fragment.duration, fragment.independent)
            completed = self.playlist.add(part, started_at)
            if completed is not None:
                self._completed(completed)
        if fragments:
            self._notify()

    def _completed(self, segment: llhls.Segment) -> None:
        for listener in self.listeners:
            try:
                listener.segment(self, segment)
            except Exception:
                log.exception("room %s: a segment listener failed", self.room_id)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, ready: Callable[[], bool], within: float) -> bool:
        """Wait until `ready()` (checked after every new part), `within` seconds at most; return ready()."""
        deadline = time.monotonic() + within
        while not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.closed and not ready()):
                return ready()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True


class Hls:
    """This node's HLS outputs by room: created for every H.264 stream, kept a minute after the
    stream ends so players read the end of the playlist."""

    def __init__(self, layout: llhls.Layout, window: int) -> None:
        self.layout = layout
        self.window = window
        self.outputs: dict[int, HlsOutput] = {}
        self.listeners: list[Callable[[HlsOutput], None]] = []  # told of each new output

    def attach(self, stream: Stream) -> None:
        """Give a new stream an HLS output if its video is H.264."""
        video = stream.codecs.get("video")
        if video is None or video.mimeType.lower() != "video/h264":
            self.outputs.pop(stream.room_id, None)
            return
        output = HlsOutput(stream, self.layout, self.window)
        stream.outputs.append(output)
        self.outputs[stream.room_id] = output
        for listener in self.listeners:
            listener(output)
        output.listeners.append(_Forget(self))

    def forget(self, output: HlsOutput) -> None:
        if self.outputs.get(output.room_id) is output:
            del self.outputs[output.room_id]

    # HTTP

    async def playlist(self, request: web.Request, node: MediaNode) -> web.Response:
        room_id = file_id(request, "room_id")
        output = self._output(room_id, node)
        msn, part = _blocking_query(request)
        timeout = 3 * self.layout.target_duration
        if msn is not None:
            try:
                output.playlist.ready(msn, part)
            except llhls.BadRequest as exc:
                raise AppError("bad_request", str(exc)) from None

        def ready() -> bool:
            """A blocking request: its part is listed; any other: the live has its first part."""
            if output.session_id is None or output.playlist.current is None:
                return False
            return msn is None or output.playlist.ready(msn, part)

        if not await output.wait(ready, timeout) and (
            output.session_id is None or output.playlist.current is None
        ):
            raise AppError("not_found", "this live has no HLS segments yet; try again in a moment")
        text = output.playlist.render(f"{output.session_id}/")
        headers = {**CORS, "Cache-Control": "public, max-age=1"}
        return web.Response(body=text.encode(), content_type=PLAYLIST_TYPE, headers=headers)

    async def media(self, request: web.Request, node: MediaNode) -> web.Response:
        room_id = file_id(request, "room_id")
        session_id = file_id(request, "session_id")
        output = self.outputs.get(room_id)
        if output is None or output.session_id != session_id:
            raise AppError("not_found", "no such live HLS session on this node")
        name = request.match_info["name"]
        if name == "init.mp4":
            if output.init is None:
                raise AppError("not_found", "no such HLS resource")
            return _immutable(output.init)
        parsed = llhls.parse_name(name)
        if parsed is None:
            raise AppError("not_found", "no such HLS resource")
        msn, index = parsed
        if index is None:
            segment = output.playlist.find(msn)
            if segment is None or not segment.complete:
                raise AppError("not_found", "no such segment (it may have left the live window)")
            return _immutable(segment.data)
        # a part the playlist hints at is answered when it is ready (LL-HLS preload hint)
        await output.wait(
            lambda: output.playlist.part_available(msn, index) is not False, 3 * self.layout.target_duration
        )
        segment = output.playlist.find(msn)
        if segment is None or index >= len(segment.parts):
            raise AppError("not_found", "no such part (it may have left the live window)")
        return _immutable(segment.parts[index].data)

    def _output(self, room_id: int, node: MediaNode) -> HlsOutput:
        output = self.outputs.get(room_id)
        if output is not None:
            return output
        stream = node.streams.get(room_id)
        if stream is not None and stream.state != "ended":
            raise AppError(
                "no_hls",
                f"this live's video is {stream.codec_names.get('video', 'missing')}: HLS needs H.264 "
                "(publish H.264 to have HLS; WebRTC viewers can still watch)",
            )
        raise AppError("not_found", "this room is not live on this node")


class _Forget:
    """Drops an ended output from its node a while after the end."""

    def __init__(self, hls: Hls) -> None:
        self.hls = hls

    def segment(self, output: HlsOutput, segment: llhls.Segment) -> None:
        return None

    def ended(self, output: HlsOutput) -> None:
        asyncio.get_running_loop().call_later(KEEP_ENDED_SECONDS, self.hls.forget, output)


def _blocking_query(request: web.Request) -> tuple[int | None, int | None]:
    """`_HLS_msn` and `_HLS_part` (RFC 8216bis §6.2.5.2); a part without an msn is an error."""
    values: list[int | None] = []
    for name in ("_HLS_msn", "_HLS_part"):
        raw = request.query.get(name)
        if raw is None:
            values.append(None)
        elif raw.isdigit() and len(raw) < 12:
            values.append(int(raw))
        else:
            raise AppError("bad_request", f"{name} must be a non-negative integer")
    msn, part = values
    if part is not None and msn is None:
        raise AppError("bad_request", "_HLS_part needs _HLS_msn")
    return msn, part


def _immutable(body: bytes) -> web.Response:
    headers = {**CORS, "Cache-Control": IMMUTABLE}
    return web.Response(body=body, content_type=SEGMENT_TYPE, headers=headers)
