"""Remuxing a publisher's encoded frames into CMAF (fragmented MP4) with PyAV's MP4 muxer: H.264
access units and Opus packets go into the file as they are, nothing is decoded or encoded.

The muxer writes an initialisation segment (`ftyp` + `moov`) and then one fragment (`moof` +
`mdat`) at each video keyframe and otherwise about every `fragment_seconds`: the fragments are
the LL-HLS partial segments. It writes into memory; each complete fragment comes back as a
`Fragment` with its duration and whether it starts with a keyframe (a segment may start there).
"""

from __future__ import annotations

import io
import struct
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import OutputContainer
from av.stream import Stream

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
_BOX = struct.Struct(">I4s")
# Fragments are cut once they reach this share of the part target, at the next frame: a part then
# ends a little under the target (the HLS part target is a maximum).
FRAGMENT_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class Fragment:
    data: bytes  # moof + mdat
    duration: float  # seconds
    independent: bool  # starts with a video keyframe


@dataclass(slots=True)
class _Sample:
    data: bytes
    pts: int
    keyframe: bool


def opus_head(channels: int = 2, sample_rate: int = AUDIO_CLOCK) -> bytes:
    """The Opus identification header (RFC 7845 §5.1) an MP4 `dOps` box is made from."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, sample_rate, 0, 0)


def boxes(data: bytes | memoryview, offset: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, start, size) of the complete boxes in data[offset:end]; stops at an unfinished one."""
    end = len(data) if end is None else end
    found = []
    while offset + 8 <= end:
        size, kind = _BOX.unpack_from(data, offset)
        if size < 8 or offset + size > end:
            break
        found.append((kind.decode("latin-1"), offset, size))
        offset += size
    return found


def fragment_sample_counts(moof: bytes) -> dict[int, int]:
    """Samples per track ID in a `moof` box (the sum of its `trun` boxes' counts, ISO/IEC 14496-12)."""
    counts: dict[int, int] = {}
    for kind, start, size in boxes(moof, 8):
        if kind != "traf":
            continue
        track_id, samples = 0, 0
        for child, child_start, _ in boxes(moof, start + 8, start + size):
            if child == "tfhd":
                (track_id,) = struct.unpack_from(">I", moof, child_start + 12)
            elif child == "trun":
                samples += struct.unpack_from(">I", moof, child_start + 12)[0]
        counts[track_id] = counts.get(track_id, 0) + samples
    return counts


class _MemoryFile:
    """Where the muxer writes: a seekable buffer (the muxer patches box sizes) from which whole
    boxes are taken as soon as they are complete."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.base = 0  # file offset of buffer[0]
        self.position = 0

    def write(self, data: bytes) -> int:
        start = self.position - self.base
        end = start + len(data)
        if end > len(self.buffer):
            self.buffer.extend(bytes(end - len(self.buffer)))
        self.buffer[start:end] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self.position = offset
        elif whence == io.SEEK_CUR:
            self.position += offset
        else:
            self.position = self.base + len(self.buffer) + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        self.base += size
        return data


class CmafMuxer:
    """H.264 (and Opus) frames in, an init segment and fragments out."""

    def __init__(self, width: int, height: int, *, audio: bool, fragment_seconds: float) -> None:
        self._file = _MemoryFile()
        self.container: OutputContainer = av.open(
            self._file,
            "w",
            format="mp4",
            options={
                # CMAF: the header without samples, then self-contained fragments
                "movflags": "+empty_moov+default_base_moof+frag_keyframe+cmaf",
                "frag_duration": str(int(fragment_seconds * FRAGMENT_SHARE * 1_000_000)),
                "flush_packets": "1",
                "max_interleave_delta": "500000",
            },
        )
        self.video = self.container.add_mux_stream("h264", width=width, height=height)
        self.video.time_base = Fraction(1, VIDEO_CLOCK)
        self.audio: Stream | None = _opus_stream(self.container) if audio else None
        self.streams = [s for s in (self.video, self.audio) if s is not None]
        self.init: bytes | None = None
        self._held: dict[str, _Sample] = {}
        self._muxed: dict[str, deque[tuple[int, bool]]] = {"video": deque(), "audio": deque()}
        self._last_duration = {"video": VIDEO_CLOCK // 30, "audio": AUDIO_CLOCK // 50}

    def write(self, kind: str, data: bytes, pts: int, keyframe: bool) -> list[Fragment]:
        """Add one frame (pts in the track's clock, increasing); return the fragments completed.
        A frame is muxed when the next one of its track arrives, which gives its duration."""
        if kind == "audio" and self.audio is None:
            return []
        held = self._held.get(kind)
        self._held[kind] = _Sample(data, pts, keyframe)
        if held is None:
            return []
        self._mux(kind, held, pts - held.pts)
        return self._fragments()

    def close(self) -> list[Fragment]:
        """Mux what is held and close the file; return the last fragments."""
        for kind, held in self._held.items():
            self._mux(kind, held, self._last_duration[kind])
        self._held.clear()
        self.container.close()
        return self._fragments()

    def _mux(self, kind: str, sample: _Sample, duration: int) -> None:
        stream = self.video if kind == "video" else self.audio
        assert stream is not None
        packet = av.Packet(sample.data)
        packet.stream = stream
        packet.time_base = Fraction(1, VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK)
        packet.pts = packet.dts = sample.pts
        packet.duration = duration
        packet.is_keyframe = sample.keyframe
        self._last_duration[kind] = duration
        self._muxed[kind].append((duration, sample.keyframe))
        self.container.mux_one(packet)

    def _fragments(self) -> list[Fragment]:
        buffer = self._file.buffer
        found = boxes(buffer)
        fragments = []
        taken = 0
        index = 0
        while index < len(found):
            kind, start, size = found[index]
            if kind in ("ftyp", "moov") and self.init is None:
                if kind == "moov":
                    self.init = bytes(buffer[: start + size])
                    taken = start + size
            elif kind == "moof":
                if index + 1 >= len(found) or found[index + 1][0] != "mdat":
                    break
                mdat_end = found[index + 1][1] + found[index + 1][2]
                fragments.append(self._fragment(bytes(buffer[start:mdat_end])))
                taken = mdat_end
                index += 1
            else:
                taken = start + size  # the trailer's index (mfra) and anything else: not media
            index += 1
        self._file.take(taken)
        return fragments

    def _fragment(self, data: bytes) -> Fragment:
        counts = fragment_sample_counts(data[: _BOX.unpack_from(data)[0]])
        track_kinds = {
            index + 1: "video" if stream is self.video else "audio"
            for index, stream in enumerate(self.streams)
        }
        durations: dict[str, int] = {}
        first_keyframe = None
        for track_id, count in counts.items():
            kind = track_kinds.get(track_id)
            if kind is None:
                continue
            muxed = self._muxed[kind]
            total = 0
            for position in range(min(count, len(muxed))):
                duration, keyframe = muxed.popleft()
                total += duration
                if kind == "video" and position == 0:
                    first_keyframe = keyframe
            durations[kind] = total
        if durations.get("video"):
            seconds = durations["video"] / VIDEO_CLOCK
        else:
            seconds = durations.get("audio", 0) / AUDIO_CLOCK
        return Fragment(data, seconds, first_keyframe is True)


def _opus_stream(container: OutputContainer) -> Stream:
    """An Opus stream whose parameters carry the OpusHead an MP4 file needs. PyAV sets codec
    parameters through a codec context; one copied from a template is never opened (no encoder
    starts), it only carries the parameters to the muxer."""
    template = av.open(io.BytesIO(), "w", format="mp4").add_stream("libopus", rate=AUDIO_CLOCK)
    stream = container.add_stream_from_template(template, opaque=True)
    stream.codec_context.extradata = opus_head()
    stream.time_base = Fraction(1, AUDIO_CLOCK)
    return stream
