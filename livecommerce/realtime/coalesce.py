"""Delivery in large rooms: room events are coalesced into one frame per tick, and chat is
sampled above a rate. Chat is the only droppable kind; every other event is always kept.
"""

from __future__ import annotations


def sample_evenly(items: list[int], keep: int) -> list[int]:
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


class TickBatch:
    """Events pending for the next tick of one room, in publish order.

    At most `chat_per_tick` chat messages go out per tick; chat pending beyond four ticks'
    worth is dropped oldest first, so a chat storm cannot grow memory. Dropped chat is counted.
    """

    __slots__ = ("_chat", "_entries", "chat_per_tick", "dropped")

    def __init__(self, chat_per_tick: int) -> None:
        self.chat_per_tick = max(1, chat_per_tick)
        self._entries: list[tuple[bytes, bool]] = []
        self._chat = 0
        self.dropped = 0

    def add(self, payload: bytes, *, droppable: bool) -> None:
        if droppable:
            if self._chat >= 4 * self.chat_per_tick:
                oldest = next(i for i, (_, chat) in enumerate(self._entries) if chat)
                del self._entries[oldest]
                self._chat -= 1
                self.dropped += 1
            self._chat += 1
        self._entries.append((payload, droppable))

    def __bool__(self) -> bool:
        return bool(self._entries)

    def take(self) -> list[bytes]:
        """Everything to deliver now, in order, with chat sampled down to the per-tick budget."""
        entries, self._entries = self._entries, []
        chat_positions = [i for i, (_, chat) in enumerate(entries) if chat]
        self._chat = 0
        if len(chat_positions) <= self.chat_per_tick:
            return [payload for payload, _ in entries]
        kept = set(sample_evenly(chat_positions, self.chat_per_tick))
        self.dropped += len(chat_positions) - len(kept)
        return [payload for i, (payload, chat) in enumerate(entries) if not chat or i in kept]
