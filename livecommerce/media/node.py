"""This node's media: the streams by room, the WHIP and WHEP session resources by id, the node's
viewer capacity, and, in a cluster (REDIS_URL), its part in the stream registry.

In a cluster each node is the origin of the rooms whose publisher it holds and an edge of any
other room one of its viewers asks for: it pulls that stream once (`relay.pull`) and forwards it
to all of its own viewers. Every heartbeat the node refreshes its registry entries and follows
the registry's changes: a publisher that moved to another node (this origin becomes an edge of
the new one), a source node that died (re-pull from another, or end the broadcast the dead node
can no longer end), an edge whose last viewer left a while ago (it stops pulling).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.media import offer, relay
from livecommerce.media.broadcasts import Broadcast, Broadcasts
from livecommerce.media.cluster import HEARTBEAT, Cluster, NodeEntry, OriginEntry, Source, codec_to_json
from livecommerce.media.recording import Recordings
from livecommerce.media.stream import SILENT_AFTER, Publisher, Stream, Viewer, node_of
from livecommerce.media.tasks import background

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Livecommerce-Forwarded"  # a session request one node passed to another


class MediaNode:
    def __init__(
        self,
        settings: Settings,
        broadcasts: Broadcasts,
        recordings: Recordings,
        cluster: Cluster | None = None,
    ) -> None:
        self.settings = settings
        self.broadcasts = broadcasts
        self.recordings = recordings  # the recorded broadcasts (the replay pages read them)
        self.cluster = cluster
        self.node_id = settings.node_id
        self.streams: dict[int, Stream] = {}
        self.publishers: dict[str, tuple[Stream, Publisher]] = {}
        self.viewers: dict[str, tuple[Stream, Viewer]] = {}
        self.sources: dict[int, Source] = {}  # what each edge stream pulls from
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._http: aiohttp.ClientSession | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        # called when a broadcast starts on this node (not when it carries on one another node
        # started): HLS attaches its output
        self.broadcast_started: list[Callable[[Stream], None]] = []

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        if self.cluster is not None:
            await self.cluster.refresh(
                viewers=0, capacity=self.settings.max_viewers_per_node, origins={}, relays={}
            )
            self._heartbeat = asyncio.create_task(self._beat())

    def registry_state(self) -> str:
        """For /readyz: whether this node reaches the stream registry."""
        if self.cluster is None:
            return "not used"
        return "ok" if self.cluster.healthy else self.cluster.last_error

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "MediaNode.start() not called"
        return self._http

    def lock(self, room_id: int) -> asyncio.Lock:
        """Serialises WHIP requests and relay pulls for one room (start, resume, takeover)."""
        return self._locks[room_id]

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    def at_capacity(self) -> bool:
        return self.viewer_count >= self.settings.max_viewers_per_node

    # origins

    def new_stream(
        self, room_id: int, codecs: dict[str, RTCRtpCodecParameters], broadcast: Broadcast | None
    ) -> Stream:
        stream = Stream(
            self.broadcasts,
            room_id,
            codecs,
            broadcast,
            node_id=self.node_id,
            grace_seconds=self.settings.publisher_grace_seconds,
            on_ended=self._ended,
            on_source_lost=self._source_lost,
            # the session's id goes into the registry at once: a publisher moving to another node
            # right after going live carries the same broadcast on there
            on_recorded=lambda stream: background(self.claim_origin(stream)),
        )
        self.streams[room_id] = stream
        return stream

    def start_broadcast(self, stream: Stream) -> None:
        """A broadcast starts here (not one carried on from another node): attach its outputs."""
        for started in self.broadcast_started:
            started(stream)

    async def origin_elsewhere(self, room_id: int) -> OriginEntry | None:
        """The room's origin entry when another node holds its publisher. A node that cannot
        reach the registry carries on alone: it serves what it holds."""
        if self.cluster is None:
            return None
        try:
            entry = await self.cluster.origin(room_id)
        except AppError as exc:
            log.warning("room %s: %s; publishing on this node only", room_id, exc.message)
            return None
        return entry if entry is not None and entry.node != self.node_id else None

    async def claim_origin(self, stream: Stream) -> None:
        """Tell the cluster at once that this node holds the room's publisher."""
        if self.cluster is None:
            return
        if self.sources.pop(stream.room_id, None) is not None:  # it was an edge of the room
            background(self._leave_registry(stream.room_id, origin=False, relay=True))
        try:
            await self.cluster.claim_origin(stream.room_id, self._origin_entry(stream))
        except AppError as exc:
            log.warning("room %s: %s; the next heartbeat retries", stream.room_id, exc.message)

    def _origin_entry(self, stream: Stream) -> OriginEntry:
        publisher = stream.publisher
        silent = publisher is None or time.monotonic() - stream.last_media > SILENT_AFTER
        return OriginEntry(
            node=self.node_id,
            url=self.settings.node_address,
            state=stream.state,
            codecs={kind: codec_to_json(codec) for kind, codec in stream.codecs.items()},
            session_id=stream.session_id,
            started_at=stream.started_at.isoformat() if stream.started_at else None,
            publisher_key=None if publisher is None else publisher.stream_key_id,
            silent=silent,
            hls=self.settings.node_address if stream.outputs else stream.hls_elsewhere,
        )

    # edges

    async def edge_stream(self, room_id: int) -> Stream:
        """The room's stream on this node, pulled from the cluster if another node holds it:
        `not_live` when no node does, `unavailable` when its source cannot be reached."""
        async with self.lock(room_id):
            stream = self.streams.get(room_id)
            if stream is not None:
                return stream
            if self.cluster is None:
                raise AppError("not_live", "this room is not live")
            entry = await self.cluster.origin(room_id)
            if entry is None or entry.node == self.node_id:
                raise AppError("not_live", "this room is not live")
            stream = self.new_stream(room_id, entry.codec_parameters(), None)
            stream.origin_node = entry.node
            stream.hls_elsewhere = entry.hls
            stream.adopt(entry.session_id, parse_time(entry.started_at))
            try:
                await self._pull(stream, entry)
            except BaseException:
                await stream.end("relay_failed", record=False)
                raise
            return stream

    async def _pull(self, stream: Stream, entry: OriginEntry) -> None:
        assert self.cluster is not None
        source = await self.cluster.pick_source(stream.room_id, entry)
        publisher = await relay.pull(self.settings, self.http, source, stream, stream.codecs)
        if stream.state == "ended":
            await publisher.pc.close()
            return
        self.sources[stream.room_id] = source
        stream.origin_node = entry.node
        stream.attach(publisher)
        with contextlib.suppress(AppError):  # else the next heartbeat enters it
            await self.cluster.add_relay(stream.room_id, source)
        log.info("room %s: relaying from %s (depth %d)", stream.room_id, source.node, source.depth + 1)

    def _source_lost(self, stream: Stream) -> None:
        self.sources.pop(stream.room_id, None)
        background(self._recover(stream))

    async def _recover(self, stream: Stream) -> None:
        """A relay's source went away: pull again from whatever now carries the same broadcast,
        or end this node's copy (recording the end if the origin died without doing it)."""
        assert self.cluster is not None
        deadline = time.monotonic() + max(self.settings.publisher_grace_seconds, 2 * HEARTBEAT)
        while stream.state == "reconnecting":
            try:
                entry = await self.cluster.origin(stream.room_id)
                if entry is None or (stream.session_id is not None and entry.session_id != stream.session_id):
                    # the broadcast is over: ended by its origin, or its origin died with it
                    died = stream.session_id is not None and not await self.broadcasts.has_ended(
                        stream.session_id
                    )
                    await stream.end("origin_lost" if died else "origin_ended", record=died)
                    return
                if entry.node != self.node_id and await self.cluster.node(entry.node) is not None:
                    async with self.lock(stream.room_id):
                        if stream.state == "reconnecting":
                            await self._pull(stream, entry)
                    continue
            except AppError as exc:
                log.warning("room %s: cannot pull again yet: %s", stream.room_id, exc.message)
            if time.monotonic() > deadline:
                # the broadcast goes on elsewhere but cannot be pulled: this node's viewers play
                # again through another node (the watch page retries)
                await stream.end("origin_unreachable", record=False)
                return
            await asyncio.sleep(HEARTBEAT / 2)

    # viewers

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

    async def hls_elsewhere(self, room_id: int) -> str | None:
        """The address of the node that makes this room's HLS, when it is another node."""
        if self.cluster is None:
            return None
        try:
            entry = await self.cluster.origin(room_id)
        except AppError:
            return None
        if entry is None or entry.hls in (None, self.settings.node_address):
            return None
        return entry.hls

    async def node_with_room(self, room_id: int) -> NodeEntry | None:
        """Another node that can take a viewer: one already carrying the room first (it costs
        no new relay), then the one with the most free places."""
        if self.cluster is None:
            return None
        carrying = set(await self.cluster.relays(room_id))
        origin = await self.cluster.origin(room_id)
        if origin is not None:
            carrying.add(origin.node)
        others = [node for node in await self.cluster.nodes() if node.node != self.node_id and node.room > 0]
        if not others:
            return None
        return max(others, key=lambda node: (node.node in carrying, node.room))

    async def forward(self, request: web.Request) -> web.Response:
        """Answer a request for a session resource held by another node by passing it there."""
        owner = node_of(request.match_info["resource_id"])
        target = None
        if (
            self.cluster is not None
            and owner
            and owner != self.node_id
            and FORWARDED_HEADER not in request.headers
        ):
            target = await self.cluster.node(owner)
        if target is None:
            raise AppError("not_found", "no such session (it may have ended already)")
        headers = {FORWARDED_HEADER: self.node_id}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            async with self.http.request(
                request.method,
                target.url + request.path,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                body = await response.read()
                content_type = response.headers.get("Content-Type")
                return web.Response(status=response.status, body=body, headers=_content_type(content_type))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AppError(
                "unavailable", f"the node holding this session ({owner}) did not answer: {exc}"
            ) from None

    # the registry, every heartbeat

    async def _beat(self) -> None:
        assert self.cluster is not None
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._refresh()
                if self.cluster.healthy:
                    await self._follow_registry()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("media heartbeat failed")

    async def _refresh(self) -> None:
        assert self.cluster is not None
        live = [stream for stream in self.streams.values() if stream.state != "ended"]
        await self.cluster.refresh(
            viewers=self.viewer_count,
            capacity=self.settings.max_viewers_per_node,
            origins={stream.room_id: self._origin_entry(stream) for stream in live if stream.is_origin},
            relays={
                stream.room_id: self.sources[stream.room_id]
                for stream in live
                if not stream.is_origin and stream.room_id in self.sources
            },
        )

    async def _follow_registry(self) -> None:
        assert self.cluster is not None
        for stream in list(self.streams.values()):
            if stream.state == "ended":
                continue
            if stream.is_origin:
                entry = await self.cluster.origin(stream.room_id)
                if entry is not None and entry.node != self.node_id:
                    await self._moved_away(stream, entry)
                continue
            await self._check_edge(stream)

    async def _moved_away(self, stream: Stream, entry: OriginEntry) -> None:
        """Another node took this room's publisher: carry the same broadcast on as its edge, or
        end ours if the new publisher started another (other codecs)."""
        same = entry.session_id == stream.session_id and offer.same_codecs(
            stream.codecs, entry.codec_parameters()
        )
        if not same:
            log.info("room %s: publisher moved to %s with a new broadcast", stream.room_id, entry.node)
            stream.end_soon("replaced")
            return
        log.info("room %s: publisher moved to %s; relaying from it", stream.room_id, entry.node)
        stream.become_edge(entry.node)
        stream.detach()

    async def _check_edge(self, stream: Stream) -> None:
        assert self.cluster is not None
        source = self.sources.get(stream.room_id)
        publisher = stream.publisher
        if publisher is not None and source is not None and await self.cluster.node(source.node) is None:
            stream.publisher_lost(publisher, "source_gone")
            return
        idle = time.monotonic() - stream.last_viewer > self.settings.relay_idle_seconds
        if not stream.viewers and not stream.outputs and idle:
            log.info("room %s: no viewers here for a while; relay stops", stream.room_id)
            await stream.end("relay_idle", record=False)
            return
        entry = await self.cluster.origin(stream.room_id)
        if entry is not None:  # the origin may have moved up the tree, or recorded the start since
            stream.origin_node = entry.node
            if stream.session_id is None:
                stream.adopt(entry.session_id, parse_time(entry.started_at))

    def _ended(self, stream: Stream) -> None:
        if self.streams.get(stream.room_id) is stream:
            del self.streams[stream.room_id]
        for table in (self.publishers, self.viewers):
            for key in [key for key, (owner, _) in table.items() if owner is stream]:
                del table[key]
        was_relay = self.sources.pop(stream.room_id, None) is not None or not stream.is_origin
        if self.cluster is not None:
            background(self._leave_registry(stream.room_id, origin=stream.is_origin, relay=was_relay))

    async def _leave_registry(self, room_id: int, *, origin: bool, relay: bool) -> None:
        assert self.cluster is not None
        with contextlib.suppress(AppError):  # the entries expire by themselves
            if origin:
                await self.cluster.drop_origin(room_id)
            if relay:
                await self.cluster.drop_relay(room_id)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await asyncio.gather(*(stream.end("server_shutdown") for stream in list(self.streams.values())))
        if self.cluster is not None:
            with contextlib.suppress(AppError):
                await self.cluster.leave()
            await self.cluster.close()
        if self._http is not None:
            await self._http.close()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _content_type(value: str | None) -> dict[str, str]:
    return {"Content-Type": value} if value else {}
