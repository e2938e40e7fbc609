"""The media plane's view of the other nodes, kept in Redis: which node is the origin of each live
room, which nodes relay it (and from whom), and each node's address, load and capacity.

Every entry expires by itself (`ENTRY_TTL`) unless its node refreshes it (`HEARTBEAT`), so a node
that dies takes its entries with it within seconds and nobody has to clean up after it.

Keys:
- `lc:media:node:{node}`: JSON `{url, viewers, capacity}`; `lc:media:nodes` lists node ids;
- `lc:media:stream:{room}`: JSON `{node, url, state, codecs, session_id, started_at}`, the origin;
- `lc:media:relays:{room}`: hash node → JSON `{url, parent, depth, at}`, the relay tree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis.asyncio as redis
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from redis.exceptions import RedisError

from livecommerce.errors import AppError

log = logging.getLogger(__name__)

HEARTBEAT = 1.0  # seconds between a node's refreshes of its entries
ENTRY_TTL = 4.0  # seconds an entry outlives its node's last refresh
_NODES = "lc:media:nodes"
# Refresh a room's origin entry only while it still names this node: another node that took the
# publisher over has overwritten it, and this node's next heartbeat must not take it back.
_REFRESH_OWN = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).node ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


def _node_key(node_id: str) -> str:
    return f"lc:media:node:{node_id}"


def _stream_key(room_id: int) -> str:
    return f"lc:media:stream:{room_id}"


def _relays_key(room_id: int) -> str:
    return f"lc:media:relays:{room_id}"


def codec_to_json(codec: RTCRtpCodecParameters) -> dict[str, Any]:
    return {
        "mimeType": codec.mimeType,
        "clockRate": codec.clockRate,
        "channels": codec.channels,
        "payloadType": codec.payloadType,
        "parameters": dict(codec.parameters),
    }


def codec_from_json(data: dict[str, Any]) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=data["mimeType"],
        clockRate=data["clockRate"],
        channels=data.get("channels"),
        payloadType=data.get("payloadType"),
        parameters=data.get("parameters") or {},
    )


@dataclass(frozen=True)
class NodeEntry:
    node: str
    url: str
    viewers: int
    capacity: int

    @property
    def room(self) -> int:
        return self.capacity - self.viewers


@dataclass(frozen=True)
class OriginEntry:
    """Where a room's stream enters the cluster, and what it is."""

    node: str
    url: str
    state: str
    codecs: dict[str, dict[str, Any]]
    session_id: int | None
    started_at: str | None
    publisher_key: int | None  # the stream key the publisher used
    silent: bool  # the publisher has sent nothing for a while (any key of the room may replace it)
    hls: str | None = None  # the node making the broadcast's HLS (the one it started on)

    def replaceable_by(self, stream_key_id: int) -> bool:
        """The rule of `Stream.replaceable_by`, for a publisher on another node."""
        return self.state != "live" or self.silent or self.publisher_key == stream_key_id

    def codec_parameters(self) -> dict[str, RTCRtpCodecParameters]:
        return {kind: codec_from_json(codec) for kind, codec in self.codecs.items()}


@dataclass(frozen=True)
class Source:
    """A node a relay can pull a room's stream from: the origin (depth 0) or another relay."""

    node: str
    url: str
    depth: int


class RegistryUnavailable(AppError):
    def __init__(self, exc: Exception) -> None:
        super().__init__(
            "unavailable", f"the stream registry (Redis) cannot be reached: {type(exc).__name__}"
        )


class Cluster:
    """Reads and writes this node's entries; every method raises `RegistryUnavailable` when Redis
    cannot be reached, and `healthy` says whether the last refresh reached it."""

    def __init__(self, url: str, node_id: str, node_url: str, *, relay_fanout: int) -> None:
        self.node_id = node_id
        self.node_url = node_url
        self.relay_fanout = relay_fanout
        self.healthy = True
        self.last_error = ""
        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _call(self, action: Any) -> Any:
        try:
            return await action
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(exc) from None

    # this node's own entries, refreshed every HEARTBEAT

    async def refresh(
        self,
        *,
        viewers: int,
        capacity: int,
        origins: dict[int, OriginEntry],
        relays: dict[int, Source],
    ) -> None:
        """Write this node's load, the rooms it is origin of and the rooms it relays."""
        now = time.time()
        ttl_ms = int(ENTRY_TTL * 1000)
        node = NodeEntry(self.node_id, self.node_url, viewers, capacity)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(_node_key(self.node_id), orjson.dumps(asdict(node)), px=ttl_ms)
                pipe.sadd(_NODES, self.node_id)
                for room_id, entry in origins.items():
                    pipe.eval(
                        _REFRESH_OWN,
                        1,
                        _stream_key(room_id),
                        orjson.dumps(asdict(entry)),
                        self.node_id,
                        ttl_ms,
                    )
                for room_id, parent in relays.items():
                    self._write_relay(pipe, room_id, parent, now)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            if self.healthy:
                log.warning("stream registry unreachable: %s", exc)
            self.healthy, self.last_error = False, f"unreachable: {type(exc).__name__}"
            return
        if not self.healthy:
            log.info("stream registry reachable again")
        self.healthy, self.last_error = True, ""

    async def claim_origin(self, room_id: int, entry: OriginEntry) -> None:
        """Make this node the room's origin (a new broadcast, or the publisher moved here)."""
        value = orjson.dumps(asdict(entry))
        await self._call(self._redis.set(_stream_key(room_id), value, px=int(ENTRY_TTL * 1000)))

    async def drop_origin(self, room_id: int) -> None:
        """Remove the room's origin entry if it is still this node's (a new origin may own it)."""
        key = _stream_key(room_id)
        raw = await self._call(self._redis.get(key))
        if raw is not None and orjson.loads(raw)["node"] == self.node_id:
            await self._call(self._redis.delete(key))

    def _write_relay(self, pipe: Any, room_id: int, parent: Source, now: float) -> None:
        me = {"url": self.node_url, "parent": parent.node, "depth": parent.depth + 1, "at": now}
        pipe.hset(_relays_key(room_id), self.node_id, orjson.dumps(me))
        pipe.pexpire(_relays_key(room_id), int(ENTRY_TTL * 1000))

    async def add_relay(self, room_id: int, parent: Source) -> None:
        """Enter this node in the room's relay tree at once (the next relay may pull from it)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            self._write_relay(pipe, room_id, parent, time.time())
            await self._call(pipe.execute())

    async def drop_relay(self, room_id: int) -> None:
        await self._call(self._redis.hdel(_relays_key(room_id), self.node_id))

    async def leave(self) -> None:
        """Remove this node's own entry (a clean shutdown); the others expire."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(_node_key(self.node_id))
            pipe.srem(_NODES, self.node_id)
            await self._call(pipe.execute())

    # reading the cluster

    async def origin(self, room_id: int) -> OriginEntry | None:
        raw = await self._call(self._redis.get(_stream_key(room_id)))
        return None if raw is None else OriginEntry(**orjson.loads(raw))

    async def node(self, node_id: str) -> NodeEntry | None:
        raw = await self._call(self._redis.get(_node_key(node_id)))
        return None if raw is None else NodeEntry(**orjson.loads(raw))

    async def nodes(self) -> list[NodeEntry]:
        """Every live node (ids whose entry expired are forgotten on the way)."""
        ids = sorted(member.decode() for member in await self._call(self._redis.smembers(_NODES)))
        if not ids:
            return []
        raws = await self._call(self._redis.mget([_node_key(node_id) for node_id in ids]))
        gone = [node_id for node_id, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            await self._call(self._redis.srem(_NODES, *gone))
        return [NodeEntry(**orjson.loads(raw)) for raw in raws if raw is not None]

    async def relays(self, room_id: int) -> dict[str, dict[str, Any]]:
        """The room's fresh relay entries by node."""
        raw = await self._call(self._redis.hgetall(_relays_key(room_id)))
        fresh_after = time.time() - ENTRY_TTL
        entries = {node.decode(): orjson.loads(value) for node, value in raw.items()}
        return {node: entry for node, entry in entries.items() if entry["at"] >= fresh_after}

    async def pick_source(self, room_id: int, origin: OriginEntry) -> Source:
        """Where a new relay of the room pulls from: the shallowest node (origin first) that feeds
        fewer than `relay_fanout` relays, so the tree grows a level only when one is full."""
        relays = await self.relays(room_id)
        for node in _subtree(relays, self.node_id):  # pulling from its own relays would make a loop
            relays.pop(node, None)
        children: dict[str, int] = {}
        for entry in relays.values():
            children[entry["parent"]] = children.get(entry["parent"], 0) + 1
        candidates = [Source(origin.node, origin.url, 0)] + [
            Source(node, entry["url"], entry["depth"]) for node, entry in relays.items()
        ]
        candidates.sort(key=lambda source: (source.depth, children.get(source.node, 0), source.node))
        for source in candidates:
            if children.get(source.node, 0) < self.relay_fanout:
                return source
        return candidates[0]


def _subtree(relays: dict[str, dict[str, Any]], root: str) -> set[str]:
    """`root` and every relay that pulls from it, directly or through others."""
    found = {root}
    grew = True
    while grew:
        grew = False
        for node, entry in relays.items():
            if node not in found and entry["parent"] in found:
                found.add(node)
                grew = True
    return found
