"""Token buckets and throttles: the chat rate limit, the room socket's flood guard, sign-in and
guest creation per login and per address, and anything else that must not be hammered."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

from livecommerce.errors import AppError


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
    """Token buckets by key (a user id, a login, an address), forgetting keys whose bucket has
    been full a while."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[Hashable, TokenBucket] = {}

    def allow(self, key: Hashable) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_full()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        return bucket.allow()

    def retry_after(self, key: Hashable) -> float:
        bucket = self._buckets.get(key)
        return bucket.retry_after() if bucket else 0.0

    def _forget_full(self) -> None:
        idle = self.burst / self.rate
        now = self._clock()
        self._buckets = {k: b for k, b in self._buckets.items() if now - b._stamp < idle}

    def __len__(self) -> int:
        return len(self._buckets)


class LocalBuckets:
    """Named token buckets of any rate and burst, kept in this process: the in-process side of
    the cluster-wide rate limits (the only side without Redis, the fallback while Redis is out)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._maps: dict[tuple[float, float], BucketMap] = {}

    def take(self, key: Hashable, rate: float, burst: float) -> float:
        """Take one token from the key's bucket: 0.0 when there was one, else the seconds until
        the next."""
        buckets = self._maps.get((rate, burst))
        if buckets is None:
            buckets = self._maps[(rate, burst)] = BucketMap(rate, burst, self._clock)
        if buckets.allow(key):
            return 0.0
        return max(buckets.retry_after(key), 0.001)


class Throttle:
    """At most `per_minute` attempts per key, in bursts of up to that many; 0 means unlimited."""

    def __init__(self, what: str, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.per_minute = per_minute
        self._buckets = BucketMap(per_minute / 60, per_minute, clock) if per_minute else None

    def check(self, key: Hashable) -> None:
        """Take one attempt for the key; `rate_limited` (with `retry_after`) once they are spent."""
        if self._buckets is not None and not self._buckets.allow(key):
            self._refuse(key)

    def guard(self, key: Hashable) -> None:
        """Refuse while the key's attempts are spent, without taking one: with `failed`, this
        throttles only failures (wrong stream keys), and refuses before the secret is checked."""
        if self._buckets is not None and self._buckets.retry_after(key) > 0:
            self._refuse(key)

    def failed(self, key: Hashable) -> None:
        """Count one failed attempt against the key."""
        if self._buckets is not None:
            self._buckets.allow(key)

    def _refuse(self, key: Hashable) -> None:
        assert self._buckets is not None
        wait = max(1, math.ceil(self._buckets.retry_after(key)))
        raise AppError(
            "rate_limited", f"too many {self.what}; try again in {wait} s", details={"retry_after": wait}
        )
