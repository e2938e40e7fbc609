"""This node's media: the streams by room, the WHIP and WHEP session resources by id, and the
node's viewer capacity. Starting one checks that the installed aiortc and aioice still have what
aiortc_internals uses, so an incompatible upgrade fails at startup, not on the first broadcast."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.config import Settings
from livecommerce.media.broadcasts import Broadcast, Broadcasts
from livecommerce.media.recording import Recordings
from livecommerce.media.stream import Publisher, Stream, Viewer


class MediaNode:
    def __init__(self, settings: Settings, broadcasts: Broadcasts, recordings: Recordings) -> None:
        self.settings = settings
        self.broadcasts = broadcasts
        self.recordings = recordings
        self.streams: dict[int, Stream] = {}
        self.publishers: dict[str, tuple[Stream, Publisher]] = {}
        self.viewers: dict[str, tuple[Stream, Viewer]] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.stream_started: list[Callable[[Stream], None]] = []  # e.g. HLS attaching its output

    def lock(self, room_id: int) -> asyncio.Lock:
        """Serialises WHIP requests for one room (start, resume, takeover)."""
        return self._locks[room_id]

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    def at_capacity(self) -> bool:
        return self.viewer_count >= self.settings.max_viewers_per_node

    def new_stream(
        self, room_id: int, codecs: dict[str, RTCRtpCodecParameters], broadcast: Broadcast
    ) -> Stream:
        stream = Stream(
            self.broadcasts,
            room_id,
            codecs,
            broadcast,
            grace_seconds=self.settings.publisher_grace_seconds,
            on_ended=self._ended,
        )
        self.streams[room_id] = stream
        for started in self.stream_started:
            started(stream)
        return stream

    def add_publisher(self, stream: Stream, publisher: Publisher) -> None:
        self.publishers[publisher.id] = (stream, publisher)

    def add_viewer(self, stream: Stream, viewer: Viewer) -> None:
        self.viewers[viewer.id] = (stream, viewer)

    def remove_viewer(self, viewer_id: str) -> bool:
        entry = self.viewers.pop(viewer_id, None)
        if entry is None:
            return False
        stream, viewer = entry
        stream.remove_viewer(viewer)
        return True

    def _ended(self, stream: Stream) -> None:
        if self.streams.get(stream.room_id) is stream:
            del self.streams[stream.room_id]
        for table in (self.publishers, self.viewers):
            for key in [key for key, (owner, _) in table.items() if owner is stream]:
                del table[key]

    async def close(self) -> None:
        await asyncio.gather(*(stream.end("server_shutdown") for stream in list(self.streams.values())))
