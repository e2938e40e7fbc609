"""The seam between nodes: sequence numbers, resume history, event fan-out, presence, like
counters, rate-limit buckets and the display names taken in each room.

`make_broker(settings)` picks the in-process broker, or the Redis one when REDIS_URL is set.
Nothing outside this module and its two implementations knows which one is in use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from livecommerce.config import Settings
from livecommerce.realtime.protocol import BrokerMessage
from livecommerce.realtime.resume import HistoryView

Deliver = Callable[[BrokerMessage], None]


class Broker(ABC):
    """Every node's view of every room. `deliver` is called on this node for each event."""

    def __init__(self, *, history_limit: int, presence_ttl: float) -> None:
        self.history_limit = history_limit
        self.presence_ttl = presence_ttl
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = None

    @abstractmethod
    async def publish_event(self, room_id: int, kind: str, type_: str, head: bytes, tail: bytes) -> int:
        """Assign the room's next seq, keep `head + seq + tail` in history, deliver it to every
        node in seq order, and return the seq."""

    @abstractmethod
    async def publish_private(self, room_id: int, type_: str, to_user: int, payload: bytes) -> None:
        """Deliver an unsequenced event to one user's connections on every node."""

    @abstractmethod
    async def latest_seq(self, room_id: int) -> int:
        """The room's last assigned seq (0 before its first event)."""

    @abstractmethod
    async def history_after(self, room_id: int, since: int) -> HistoryView:
        """The latest seq, the oldest kept seq and the kept events after `since`, consistently."""

    @abstractmethod
    async def presence_join(
        self, room_id: int, user_id: int, joined_at: float, *, staff: bool = False
    ) -> None:
        """This node now has the user in the room (first connection); `staff` users (the
        studio, the console) are members but not counted as viewers."""

    @abstractmethod
    async def presence_leave(self, room_id: int, user_id: int) -> None:
        """This node no longer has the user in the room (last connection gone)."""

    @abstractmethod
    async def presence_refresh(
        self, members: dict[int, dict[int, float]], staff: dict[int, set[int]] | None = None
    ) -> None:
        """Heartbeat with this node's whole presence (room id -> user id -> joined at, and room
        id -> its staff members): keeps it alive and repairs it; a node that stops calling it
        disappears from counts after `presence_ttl` seconds."""

    @abstractmethod
    async def room_members(self, room_id: int) -> dict[int, float]:
        """User id -> earliest joined-at (epoch seconds) over all nodes, staff included."""

    @abstractmethod
    async def room_viewers(self, room_id: int) -> int:
        """How many members over all nodes are viewers or guests (staff left out)."""

    @abstractmethod
    async def claim(self, key: str, seconds: float) -> bool:
        """True for the first caller of `key` within `seconds` across all nodes (slow mode)."""

    @abstractmethod
    async def take_token(self, key: str, rate: float, burst: float) -> float:
        """Take one token from the bucket `key` (refilled at `rate` a second, up to `burst`)
        shared by every node: 0.0 when there was one, else the seconds until the next."""

    @abstractmethod
    async def publish_volatile(self, room_id: int, kind: str, type_: str, payload: bytes) -> None:
        """Deliver an unsequenced event to the whole room on every node, kept in no history:
        a running total whose next event supersedes it (likes)."""

    @abstractmethod
    async def add_likes(self, room_id: int, count: int) -> int:
        """Add `count` to the room's like counter, exactly, across all nodes; return the new total."""

    @abstractmethod
    async def likes(self, room_id: int) -> int:
        """The room's like total (0 before the first)."""

    @abstractmethod
    async def take_name(self, room_id: int, user_id: int, keys: list[str]) -> int:
        """Index of the first name key not taken in the room by another user; the user now
        holds it (in every node's view). -1 when every key is taken."""


def make_broker(settings: Settings, presence_ttl: float) -> Broker:
    if settings.redis_url:
        from livecommerce.realtime.broker_redis import RedisBroker

        return RedisBroker(
            settings.redis_url,
            node_id=settings.node_id,
            history_limit=settings.room_history,
            presence_ttl=presence_ttl,
        )
    from livecommerce.realtime.broker_memory import MemoryBroker

    return MemoryBroker(history_limit=settings.room_history, presence_ttl=presence_ttl)
