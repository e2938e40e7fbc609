"""The recent RTP payloads of one publisher track, shared by all its viewers for retransmission.

Each payload gets a running index; a viewer's leg maps its own sequence numbers onto these
indexes, so a NACK from any viewer is answered from this one ring instead of a copy per viewer.
Memory is bounded by the ring size (a few seconds of media).
"""

from __future__ import annotations

from typing import NamedTuple


class Sent(NamedTuple):
    index: int
    payload: bytes
    timestamp: int  # the fanout's RTP timestamp, before any viewer's offset
    marker: bool


class PacketHistory:
    def __init__(self, size: int) -> None:
        self.size = size
        self.next_index = 0
        self._ring: list[Sent | None] = [None] * size

    def add(self, payloads: list[bytes], timestamp: int) -> int:
        """Store one frame's payloads; return the index of the first."""
        first = self.next_index
        last = len(payloads) - 1
        for offset, payload in enumerate(payloads):
            index = first + offset
            self._ring[index % self.size] = Sent(index, payload, timestamp, offset == last)
        self.next_index = first + len(payloads)
        return first

    def get(self, index: int) -> Sent | None:
        entry = self._ring[index % self.size]
        return entry if entry is not None and entry.index == index else None
