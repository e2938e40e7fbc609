"""The Redis (or Valkey) broker: shared sequence numbers, history, pub/sub fan-out and presence.

Publishing is one Lua script (INCR, ZADD, trim, PUBLISH), so every node receives a room's
events in sequence order and history never misses an event that was delivered. Presence is
one hash per room and node with a TTL that the node refreshes: a crashed node's viewers
vanish from counts when its keys expire. Like totals are one counter per room (INCRBY), the
display names taken in a room one hash per room, rate limits one token bucket per user and
action (a Lua script on Redis's clock).

When the node's subscription drops and comes back, the events its rooms missed meanwhile are
delivered from the rooms' history, in order and once each, so its sockets need not reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from livecommerce.errors import AppError
from livecommerce.http.throttle import LocalBuckets
from livecommerce.realtime.broker import Broker, Deliver
from livecommerce.realtime.protocol import BrokerMessage, broker_header, decode_broker_message
from livecommerce.realtime.resume import HistoryView

log = logging.getLogger(__name__)

CHANNEL = "lc:events"
RESUBSCRIBE_SECONDS = 0.5
REPLAYED = "history"
"""The kind of events delivered from history after a lost subscription (history keeps the
envelope, not the publisher's kind)."""

# ARGV[6] is the highest seq this node has seen in the room: a counter lost with Redis's data
# (a restart without persistence) starts above it, so seq never goes back on any socket.
PUBLISH_EVENT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[6]) then
  redis.call('SET', KEYS[1], ARGV[6])
end
local seq = redis.call('INCR', KEYS[1])
local payload = ARGV[1] .. seq .. ARGV[2]
redis.call('ZADD', KEYS[2], seq, payload)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[4]) + 1))
redis.call('PUBLISH', ARGV[5], ARGV[3] .. seq .. '\\n' .. payload)
return seq
"""

# A token bucket as a hash {tokens, stamp} on Redis's own clock, so every node draws from the
# same bucket however their clocks differ; it expires once it would be full again anyway.
TAKE_TOKEN = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

HISTORY_AFTER = """
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local events = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
return {latest, oldest[2] or '0', events}
"""

TAKE_NAME = """
for i = 3, #ARGV do
  local holder = redis.call('HGET', KEYS[1], ARGV[i])
  if not holder then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
  end
  if not holder or holder == ARGV[1] then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return i - 3
  end
end
return -1
"""

# A room's taken names are kept this long after the last join, so a name seen in the chat
# is not handed to someone else while the stream is remembered.
NAMES_TTL_SECONDS = 7 * 24 * 3600


def _seq_key(room_id: int) -> str:
    return f"lc:room:{room_id}:seq"


def _history_key(room_id: int) -> str:
    return f"lc:room:{room_id}:history"


def _nodes_key(room_id: int) -> str:
    return f"lc:room:{room_id}:nodes"


def _likes_key(room_id: int) -> str:
    return f"lc:room:{room_id}:likes"


def _names_key(room_id: int) -> str:
    return f"lc:room:{room_id}:names"


def _presence_key(room_id: int, node_id: str) -> str:
    return f"lc:room:{room_id}:presence:{node_id}"


STAFF_MARK = " staff"


def _presence_value(joined_at: float, staff: bool) -> str:
    """A member's presence field: when they joined, marked when they are staff."""
    return repr(joined_at) + (STAFF_MARK if staff else "")


def _seq_of(payload: bytes) -> int:
    """The seq of a stored envelope, read from its fixed `"seq":` field."""
    start = payload.index(b'"seq":') + 6
    end = payload.index(b",", start)
    return int(payload[start:end])


class RedisBroker(Broker):
    def __init__(self, url: str, *, node_id: str, history_limit: int, presence_ttl: float) -> None:
        super().__init__(history_limit=history_limit, presence_ttl=presence_ttl)
        self.node_id = node_id
        self._redis = redis.from_url(url, client_name=f"livecommerce:{node_id}")
        self._publish_event = self._redis.register_script(PUBLISH_EVENT)
        self._history_after = self._redis.register_script(HISTORY_AFTER)
        self._take_name = self._redis.register_script(TAKE_NAME)
        self._take_token = self._redis.register_script(TAKE_TOKEN)
        self._local_buckets = LocalBuckets()
        # subscribe confirmations are read: one after a drop says the subscription is back
        self._pubsub = self._redis.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._local_rooms: set[int] = set()
        self._seen_seq: dict[int, int] = {}
        self._delivered_seq: dict[int, int] = {}

    async def start(self, deliver: Deliver) -> None:
        await super().start(deliver)
        await self._pubsub.subscribe(CHANNEL)
        self._reader = asyncio.create_task(self._read(deliver), name="redis-broker-reader")

    async def _read(self, deliver: Deliver) -> None:
        subscribed = False
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                log.warning("broker subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                # every confirmation after the first is a subscription that came back, after
                # our own retry or one the client library made on a dropped connection
                if subscribed:
                    await self._deliver_missed(deliver)
                subscribed = True
                continue
            if message["type"] == "message":
                try:
                    self._deliver_once(decode_broker_message(message["data"]), deliver)
                except Exception:
                    log.exception("dropping an undeliverable broker message")

    def _deliver_once(self, event: BrokerMessage, deliver: Deliver) -> None:
        """Deliver a room event unless history already did (after a lost subscription)."""
        if event.seq is not None:
            self._saw(event.room_id, event.seq)
            if event.seq <= self._delivered_seq.get(event.room_id, 0):
                return
            self._delivered_seq[event.room_id] = event.seq
        deliver(event)

    async def _deliver_missed(self, deliver: Deliver) -> None:
        """The subscription is back: deliver each local room's events published while it was
        down, from the room's history."""
        try:
            for room_id in sorted(self._local_rooms):
                since = self._delivered_seq.get(room_id)
                if since is None:
                    continue
                view = await self.history_after(room_id, since)
                if view.oldest is not None and view.oldest > since + 1:
                    log.warning(
                        "room %s: events %s to %s aged out of history", room_id, since + 1, view.oldest - 1
                    )
                for seq, payload in view.events:
                    type_ = orjson.loads(payload)["type"]
                    self._deliver_once(BrokerMessage(room_id, REPLAYED, type_, None, seq, payload), deliver)
        except (RedisError, OSError) as exc:
            log.warning("cannot read the history missed while unsubscribed (%s)", exc)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(RedisError, OSError):
            async with self._redis.pipeline(transaction=False) as pipe:
                for room_id in self._local_rooms:
                    pipe.delete(_presence_key(room_id, self.node_id))
                    pipe.srem(_nodes_key(room_id), self.node_id)
                await pipe.execute()
        await self._pubsub.aclose()
        await self._redis.aclose()
        await super().close()

    async def publish_event(self, room_id: int, kind: str, type_: str, head: bytes, tail: bytes) -> int:
        header = broker_header(room_id, kind, type_, None)
        try:
            seq = await self._publish_event(
                keys=[_seq_key(room_id), _history_key(room_id)],
                args=[head, tail, header, self.history_limit, CHANNEL, self._seen_seq.get(room_id, 0)],
            )
        except (RedisError, OSError) as exc:
            log.warning("room %s: cannot publish %s (%s)", room_id, type_, exc)
            raise AppError("unavailable", "the room cannot take this right now; try again shortly") from exc
        self._saw(room_id, int(seq))
        return int(seq)

    def _saw(self, room_id: int, seq: int) -> None:
        if seq > self._seen_seq.get(room_id, 0):
            self._seen_seq[room_id] = seq

    async def publish_private(self, room_id: int, type_: str, to_user: int, payload: bytes) -> None:
        await self._redis.publish(
            CHANNEL, broker_header(room_id, "private", type_, to_user) + b"0\n" + payload
        )

    async def latest_seq(self, room_id: int) -> int:
        latest = int(await self._redis.get(_seq_key(room_id)) or 0)
        self._joined_at_seq(room_id, latest)
        return latest

    async def history_after(self, room_id: int, since: int) -> HistoryView:
        latest, oldest, events = await self._history_after(
            keys=[_seq_key(room_id), _history_key(room_id)], args=[max(since, 0)]
        )
        oldest_seq = int(oldest) or None
        self._joined_at_seq(room_id, int(latest))
        return HistoryView(int(latest), oldest_seq, [(_seq_of(p), p) for p in events])

    def _joined_at_seq(self, room_id: int, latest: int) -> None:
        """Where a room's delivery starts on this node, when no event of it came yet: sockets
        join it with a snapshot at (or after) `latest`, so what a lost subscription misses
        after that is delivered from history when it comes back."""
        self._delivered_seq.setdefault(room_id, latest)

    async def presence_join(
        self, room_id: int, user_id: int, joined_at: float, *, staff: bool = False
    ) -> None:
        self._local_rooms.add(room_id)
        key = _presence_key(room_id, self.node_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, str(user_id), _presence_value(joined_at, staff))
            pipe.pexpire(key, int(self.presence_ttl * 1000))
            pipe.sadd(_nodes_key(room_id), self.node_id)
            await pipe.execute()

    async def presence_leave(self, room_id: int, user_id: int) -> None:
        await self._redis.hdel(_presence_key(room_id, self.node_id), str(user_id))

    async def presence_refresh(
        self, members: dict[int, dict[int, float]], staff: dict[int, set[int]] | None = None
    ) -> None:
        staff = staff or {}
        gone = self._local_rooms.difference(members)
        self._local_rooms = set(members)
        ttl = int(self.presence_ttl * 1000)
        # MULTI/EXEC: the hash is replaced at once, so readers never see it half rebuilt
        async with self._redis.pipeline(transaction=True) as pipe:
            for room_id, users in members.items():
                key = _presence_key(room_id, self.node_id)
                pipe.delete(key)
                if users:
                    room_staff = staff.get(room_id, set())
                    pipe.hset(
                        key,
                        mapping={
                            str(user): _presence_value(joined, user in room_staff)
                            for user, joined in users.items()
                        },
                    )
                pipe.pexpire(key, ttl)
                pipe.sadd(_nodes_key(room_id), self.node_id)
            for room_id in gone:
                pipe.delete(_presence_key(room_id, self.node_id))
                pipe.srem(_nodes_key(room_id), self.node_id)
            await pipe.execute()

    async def room_members(self, room_id: int) -> dict[int, float]:
        members, _ = await self._presence(room_id)
        return members

    async def room_viewers(self, room_id: int) -> int:
        members, staff = await self._presence(room_id)
        return len(members.keys() - staff)

    async def _presence(self, room_id: int) -> tuple[dict[int, float], set[int]]:
        """Every node's members (user id -> earliest joined-at) and which of them are staff."""
        nodes = [n.decode() for n in await self._redis.smembers(_nodes_key(room_id))]
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hgetall(_presence_key(room_id, node))
            per_node = await pipe.execute()
        members: dict[int, float] = {}
        staff: set[int] = set()
        for node, fields in zip(nodes, per_node, strict=True):
            if not fields and node != self.node_id:
                await self._redis.srem(_nodes_key(room_id), node)
            for user, value in fields.items():
                joined, mark, _ = value.decode().partition(STAFF_MARK)
                user_id, joined_at = int(user), float(joined)
                members[user_id] = min(joined_at, members.get(user_id, joined_at))
                if mark:
                    staff.add(user_id)
        return members, staff

    async def claim(self, key: str, seconds: float) -> bool:
        return bool(await self._redis.set(f"lc:claim:{key}", b"1", nx=True, px=max(1, int(seconds * 1000))))

    async def take_token(self, key: str, rate: float, burst: float) -> float:
        try:
            wait = await self._take_token(keys=[f"lc:bucket:{key}"], args=[rate, burst])
        except (RedisError, OSError) as exc:
            # limits stay enforced while Redis is out, per node, rather than not at all
            log.warning("rate limit %s taken on this node only (%s)", key, exc)
            return self._local_buckets.take(key, rate, burst)
        return float(wait)

    async def publish_volatile(self, room_id: int, kind: str, type_: str, payload: bytes) -> None:
        await self._redis.publish(CHANNEL, broker_header(room_id, kind, type_, None) + b"0\n" + payload)

    async def add_likes(self, room_id: int, count: int) -> int:
        return int(await self._redis.incrby(_likes_key(room_id), count))

    async def likes(self, room_id: int) -> int:
        return int(await self._redis.get(_likes_key(room_id)) or 0)

    async def take_name(self, room_id: int, user_id: int, keys: list[str]) -> int:
        index = await self._take_name(keys=[_names_key(room_id)], args=[user_id, NAMES_TTL_SECONDS, *keys])
        return int(index)
