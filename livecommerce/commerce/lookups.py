"""A cache of lookups for hot paths: concurrent misses for one key share one lookup.

A storm's first taps all miss at once; without this each would query PostgreSQL. The cache
holds the lookup's task, so later callers get the finished result; a lookup that failed or was
cancelled is forgotten and the next caller asks again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class SharedLookup(Generic[Key, Value]):
    def __init__(self, load: Callable[[Key], Awaitable[Value]], *, ttl_s: float = math.inf) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._entries: dict[Key, tuple[float, asyncio.Future[Value]]] = {}

    def cached(self, key: Key) -> Value | None:
        """The value if it is loaded and fresh, without waiting; None otherwise."""
        entry = self._entries.get(key)
        if entry is None or not entry[1].done() or time.monotonic() - entry[0] >= self._ttl_s:
            return None
        task = entry[1]
        return None if task.cancelled() or task.exception() is not None else task.result()

    async def get(self, key: Key) -> Value:
        value = self.cached(key)
        if value is not None:
            return value
        return await asyncio.shield(self._lookup(key))

    def get_soon(self, key: Key, callback: Callable[[Value | BaseException], None]) -> None:
        """Call back with the value (at once when it is cached) or the lookup's exception:
        thousands of callers waiting on one lookup cost one callback each, no task."""
        value = self.cached(key)
        if value is not None:
            callback(value)
            return

        def done(task: asyncio.Future[Value]) -> None:
            if task.cancelled():
                callback(asyncio.CancelledError())
            else:
                callback(task.exception() or task.result())

        self._lookup(key).add_done_callback(done)

    def put(self, key: Key, value: Value) -> None:
        """Remember a value this process learned another way (it is what a lookup would return)."""
        known: asyncio.Future[Value] = asyncio.get_running_loop().create_future()
        known.set_result(value)
        self._entries[key] = (time.monotonic(), known)

    def _lookup(self, key: Key) -> asyncio.Future[Value]:
        """The key's lookup in flight (or just finished), started if there is none."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] >= self._ttl_s:
            task = asyncio.ensure_future(self._load(key))
            task.add_done_callback(lambda done: self._forget_failed(key, done))
            entry = self._entries[key] = (now, task)
        return entry[1]

    def _forget_failed(self, key: Key, task: asyncio.Future[Value]) -> None:
        if task.cancelled() or task.exception() is not None:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is task:
                del self._entries[key]
