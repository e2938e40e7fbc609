"""Chat delivery in large rooms: coalesce messages per tick and sample above a rate.

Only chat passes through here; commerce and moderation events are never sampled.
"""

from __future__ import annotations


def sample_evenly(items: list[bytes], keep: int) -> list[bytes]:
    """Keep `keep` items spread evenly over the list, first and last included, order kept."""
    count = len(items)
    if keep >= count:
        return items
    if keep <= 0:
        return []
    if keep == 1:
        return [items[-1]]
    step = (count - 1) / (keep - 1)
    return [items[round(i * step)] for i in range(keep)]


class ChatCoalescer:
    """Chat payloads pending for the next tick of one room, at most `per_tick` delivered.

    The pending list is capped at four ticks' worth, so a chat storm cannot grow memory;
    what is over budget is counted as dropped.
    """

    __slots__ = ("_pending", "dropped", "per_tick")

    def __init__(self, per_tick: int) -> None:
        self.per_tick = max(1, per_tick)
        self._pending: list[bytes] = []
        self.dropped = 0

    def add(self, payload: bytes) -> None:
        if len(self._pending) >= 4 * self.per_tick:
            self._pending.pop(0)
            self.dropped += 1
        self._pending.append(payload)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[bytes]:
        """The chat to deliver now, sampled down to the per-tick budget."""
        pending, self._pending = self._pending, []
        kept = sample_evenly(pending, self.per_tick)
        self.dropped += len(pending) - len(kept)
        return kept
