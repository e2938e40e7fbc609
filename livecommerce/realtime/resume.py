"""The `since=N` resume decision and the bounded in-memory history of one room."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass


class Resume(enum.Enum):
    REPLAY = "replay"  # send exactly the events after `since` from history
    SNAPSHOT = "snapshot"  # send a fresh state snapshot


@dataclass(frozen=True, slots=True)
class HistoryView:
    """What the broker knows of a room's sequence when a client resumes."""

    latest: int  # the last assigned sequence number (0: none yet)
    oldest: int | None  # the oldest sequence number still kept in history
    events: list[tuple[int, bytes]]  # kept events after `since`, in order


def plan_resume(since: int | None, view: HistoryView) -> Resume:
    """Replay when every event after `since` is still kept, else a snapshot.

    A `since` beyond the latest sequence number means the counter was reset (a restarted
    single node): the client's state is from another epoch, so it gets a snapshot.
    """
    if since is None or since < 0 or since > view.latest:
        return Resume.SNAPSHOT
    if since == view.latest:
        return Resume.REPLAY
    if view.oldest is None or view.oldest > since + 1:
        return Resume.SNAPSHOT
    return Resume.REPLAY


class RoomHistory:
    """The last `limit` events of one room, with their sequence numbers."""

    def __init__(self, limit: int) -> None:
        self._events: deque[tuple[int, bytes]] = deque(maxlen=limit)
        self.latest = 0

    def next_seq(self) -> int:
        self.latest += 1
        return self.latest

    def append(self, seq: int, payload: bytes) -> None:
        self._events.append((seq, payload))

    def view_after(self, since: int) -> HistoryView:
        oldest = self._events[0][0] if self._events else None
        return HistoryView(self.latest, oldest, [(s, p) for s, p in self._events if s > since])
