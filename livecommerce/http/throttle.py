"""Token buckets: the per-user chat rate limit and the per-connection flood guard."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second up to `burst`; each allowed action takes one token."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def allow(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)


class BucketMap:
    """Token buckets by key (a user id), forgetting keys whose bucket has been full a while."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[int, TokenBucket] = {}

    def allow(self, key: int) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_full()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        return bucket.allow()

    def retry_after(self, key: int) -> float:
        bucket = self._buckets.get(key)
        return bucket.retry_after() if bucket else 0.0

    def _forget_full(self) -> None:
        idle = self.burst / self.rate
        now = self._clock()
        self._buckets = {k: b for k, b in self._buckets.items() if now - b._stamp < idle}

    def __len__(self) -> int:
        return len(self._buckets)
