"""The in-process broker: one node, events delivered synchronously in sequence order."""

from __future__ import annotations

import time

from livecommerce.http.throttle import LocalBuckets
from livecommerce.realtime.broker import Broker
from livecommerce.realtime.protocol import BrokerMessage
from livecommerce.realtime.resume import HistoryView, RoomHistory


class MemoryBroker(Broker):
    def __init__(self, *, history_limit: int, presence_ttl: float) -> None:
        super().__init__(history_limit=history_limit, presence_ttl=presence_ttl)
        self._histories: dict[int, RoomHistory] = {}
        self._members: dict[int, dict[int, float]] = {}
        self._staff: dict[int, set[int]] = {}
        self._claims: dict[str, float] = {}
        self._likes: dict[int, int] = {}
        self._names: dict[int, dict[str, int]] = {}
        self._buckets = LocalBuckets()

    def _history(self, room_id: int) -> RoomHistory:
        history = self._histories.get(room_id)
        if history is None:
            history = self._histories[room_id] = RoomHistory(self.history_limit)
        return history

    def _emit(self, message: BrokerMessage) -> None:
        if self._deliver is not None:
            self._deliver(message)

    async def publish_event(self, room_id: int, kind: str, type_: str, head: bytes, tail: bytes) -> int:
        history = self._history(room_id)
        seq = history.next_seq()
        payload = head + str(seq).encode() + tail
        history.append(seq, payload)
        self._emit(BrokerMessage(room_id, kind, type_, None, seq, payload))
        return seq

    async def publish_private(self, room_id: int, type_: str, to_user: int, payload: bytes) -> None:
        self._emit(BrokerMessage(room_id, "private", type_, to_user, None, payload))

    async def latest_seq(self, room_id: int) -> int:
        return self._history(room_id).latest

    async def history_after(self, room_id: int, since: int) -> HistoryView:
        return self._history(room_id).view_after(since)

    async def presence_join(
        self, room_id: int, user_id: int, joined_at: float, *, staff: bool = False
    ) -> None:
        self._members.setdefault(room_id, {})[user_id] = joined_at
        if staff:
            self._staff.setdefault(room_id, set()).add(user_id)

    async def presence_leave(self, room_id: int, user_id: int) -> None:
        members = self._members.get(room_id)
        if members is not None:
            members.pop(user_id, None)
            if not members:
                del self._members[room_id]
        self._staff.get(room_id, set()).discard(user_id)

    async def presence_refresh(
        self, members: dict[int, dict[int, float]], staff: dict[int, set[int]] | None = None
    ) -> None:
        """One process: presence lives and dies with it."""

    async def room_members(self, room_id: int) -> dict[int, float]:
        return dict(self._members.get(room_id, {}))

    async def room_viewers(self, room_id: int) -> int:
        return len(self._members.get(room_id, {}).keys() - self._staff.get(room_id, set()))

    async def claim(self, key: str, seconds: float) -> bool:
        now = time.monotonic()
        if self._claims.get(key, 0.0) > now:
            return False
        if len(self._claims) > 10_000:
            self._claims = {k: until for k, until in self._claims.items() if until > now}
        self._claims[key] = now + seconds
        return True

    async def take_token(self, key: str, rate: float, burst: float) -> float:
        return self._buckets.take(key, rate, burst)

    async def publish_volatile(self, room_id: int, kind: str, type_: str, payload: bytes) -> None:
        self._emit(BrokerMessage(room_id, kind, type_, None, None, payload))

    async def add_likes(self, room_id: int, count: int) -> int:
        total = self._likes[room_id] = self._likes.get(room_id, 0) + count
        return total

    async def likes(self, room_id: int) -> int:
        return self._likes.get(room_id, 0)

    async def take_name(self, room_id: int, user_id: int, keys: list[str]) -> int:
        holders = self._names.setdefault(room_id, {})
        for index, key in enumerate(keys):
            if holders.setdefault(key, user_id) == user_id:
                return index
        return -1
