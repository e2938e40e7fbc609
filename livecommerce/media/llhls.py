"""Low-latency HLS playlists (RFC 8216bis, the low-latency extension): segments made of partial
segments, kept in a sliding window, and the media playlist that lists them, live or ended.

Pure: fragments in, playlist text and blocking-reload decisions out; hls.py does the I/O.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

VERSION = 9
PARTS_FOR_TARGET_DURATIONS = 3  # parts are listed for the segments this close to the live edge


class BadRequest(ValueError):
    """A blocking reload asks for a segment too far ahead (RFC 8216bis §6.2.5.2)."""


@dataclass(frozen=True, slots=True)
class Part:
    data: bytes
    duration: float
    independent: bool


@dataclass(slots=True)
class Segment:
    msn: int  # media sequence number
    started_at: datetime  # wall-clock time of its first frame (EXT-X-PROGRAM-DATE-TIME)
    parts: list[Part] = field(default_factory=list)
    complete: bool = False

    @property
    def duration(self) -> float:
        return sum(part.duration for part in self.parts)

    @property
    def data(self) -> bytes:
        return b"".join(part.data for part in self.parts)


@dataclass(frozen=True)
class Layout:
    """Targets and names: a playlist's fixed shape."""

    segment_seconds: float  # a segment is cut at the first keyframe past half of this
    part_seconds: float

    @property
    def target_duration(self) -> int:
        # a segment runs to the next keyframe: up to the target plus a keyframe request's delay
        return math.ceil(self.segment_seconds) + 1

    @property
    def min_segment_seconds(self) -> float:
        return self.segment_seconds / 2

    @property
    def part_hold_back(self) -> float:
        return round(3 * self.part_seconds, 3)


def segment_name(msn: int) -> str:
    return f"{msn}.m4s"


def part_name(msn: int, index: int) -> str:
    return f"{msn}.{index}.m4s"


_NAME = re.compile(r"(\d{1,12})(?:\.(\d{1,6}))?\.m4s")


def parse_name(name: str) -> tuple[int, int | None] | None:
    """(msn, part index or None) of a segment or part name; None if it is neither."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) if match.group(2) is not None else None


class LivePlaylist:
    """The segments of one live: the current one growing part by part, the completed ones in a
    sliding window of `window` segments."""

    def __init__(self, layout: Layout, window: int) -> None:
        self.layout = layout
        self.window = window
        self.segments: deque[Segment] = deque()
        self.ended = False

    @property
    def current(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    @property
    def first_msn(self) -> int:
        return self.segments[0].msn if self.segments else 0

    def add(self, part: Part, started_at: datetime) -> Segment | None:
        """Append a fragment; a keyframe fragment starts a new segment once the current one is at
        least half the segment target long. Returns the segment this completed, if any."""
        current = self.current
        completed = None
        if current is None or (
            part.independent and current.parts and current.duration >= self.layout.min_segment_seconds
        ):
            if current is not None:
                current.complete = True
                completed = current
            if current is None and not part.independent:
                return None  # a live starts on a keyframe
            msn = current.msn + 1 if current is not None else 0
            self.segments.append(Segment(msn, started_at))
            while len(self.segments) > self.window + 1:
                self.segments.popleft()
        self.segments[-1].parts.append(part)
        return completed

    def end(self) -> Segment | None:
        """The live is over: the current segment is complete; no more parts are coming."""
        self.ended = True
        current = self.current
        if current is None or current.complete or not current.parts:
            return None
        current.complete = True
        return current

    def find(self, msn: int) -> Segment | None:
        index = msn - self.first_msn
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None

    def ready(self, msn: int, part: int | None) -> bool:
        """Whether a playlist now satisfies a blocking reload for `_HLS_msn` / `_HLS_part`
        (that segment, or that part of it, or anything later is listed); BadRequest when the
        request is more than two segments ahead of the live edge."""
        current = self.current
        if self.ended:
            return True
        last = current.msn if current is not None else -1
        if msn > last + 2:
            raise BadRequest(f"_HLS_msn={msn} is more than two segments ahead of the live edge ({last})")
        if current is None or msn > last:
            return False
        if msn < last:
            return True
        return part is not None and part < len(current.parts)

    def part_available(self, msn: int, index: int) -> bool | None:
        """True if the part exists, False if it will (it is the next one), None if it never will."""
        segment = self.find(msn)
        if segment is not None:
            if index < len(segment.parts):
                return True
            return False if not segment.complete and index == len(segment.parts) else None
        current = self.current
        if current is not None and current.complete is False and msn == current.msn + 1 and index == 0:
            return False
        return None

    def render(self, prefix: str) -> str:
        """The media playlist; segment and part URIs are `prefix` + name."""
        layout = self.layout
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{VERSION}",
            f"#EXT-X-TARGETDURATION:{layout.target_duration}",
        ]
        if not self.ended:
            lines += [
                f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={layout.part_hold_back:.3f}",
            ]
        lines += [
            f"#EXT-X-PART-INF:PART-TARGET={layout.part_seconds:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.first_msn}",
            f'#EXT-X-MAP:URI="{prefix}init.mp4"',
        ]
        listed = [segment for segment in self.segments if segment.parts]
        with_parts = self._segments_with_parts(listed)
        for position, segment in enumerate(listed):
            if position == 0:
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(segment.started_at)}")
            if segment.msn in with_parts:
                for index, part in enumerate(segment.parts):
                    independent = ",INDEPENDENT=YES" if part.independent else ""
                    lines.append(
                        f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{prefix}{part_name(segment.msn, index)}"'
                        + independent
                    )
            if segment.complete:
                lines += [f"#EXTINF:{segment.duration:.3f},", prefix + segment_name(segment.msn)]
        current = self.current
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        elif current is not None:
            msn, index = (current.msn + 1, 0) if current.complete else (current.msn, len(current.parts))
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{prefix}{part_name(msn, index)}"')
        return "\n".join(lines) + "\n"

    def _segments_with_parts(self, segments: list[Segment]) -> set[int]:
        """The msns whose parts are listed: those within three target durations of the end."""
        if self.ended:
            return set()
        horizon = PARTS_FOR_TARGET_DURATIONS * self.layout.target_duration
        listed: set[int] = set()
        total = 0.0
        for segment in reversed(segments):
            listed.add(segment.msn)
            total += segment.duration
            if total >= horizon:
                break
        return listed


def vod_playlist(layout: Layout, segments: list[tuple[int, float]], started_at: datetime | None) -> str:
    """The playlist of a recording: (msn, duration) of each segment, all of them, ended."""
    target = max([layout.target_duration, *(round(duration) for _, duration in segments)])
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        f"#EXT-X-MEDIA-SEQUENCE:{segments[0][0] if segments else 0}",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    if started_at is not None:
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(started_at)}")
    for msn, duration in segments:
        lines += [f"#EXTINF:{duration:.3f},", segment_name(msn)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _pdt(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
