"""A cache of lookups for hot paths: concurrent misses for one key share one lookup.

A storm's first taps all miss at once; without this each would query PostgreSQL. The cache
holds the lookup's task, so later callers get the finished result; a lookup that failed or was
cancelled is forgotten and the next caller asks again.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class SharedLookup(Generic[Key, Value]):
    def __init__(self, load: Callable[[Key], Awaitable[Value]], *, ttl_s: float = math.inf) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._entries: dict[Key, tuple[float, asyncio.Task[Value]]] = {}

    async def get(self, key: Key) -> Value:
        now = asyncio.get_running_loop().time()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl_s:
            task = asyncio.ensure_future(self._load(key))
            task.add_done_callback(lambda done: self._forget_failed(key, done))
            entry = self._entries[key] = (now, task)
        return await asyncio.shield(entry[1])

    def _forget_failed(self, key: Key, task: asyncio.Task[Value]) -> None:
        if task.cancelled() or task.exception() is not None:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is task:
                del self._entries[key]
