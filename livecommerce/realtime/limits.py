"""Per-user rate limits on room commands (chat, likes), counted over the whole cluster through
the broker: a client that reconnects to another node does not get a fresh budget."""

from __future__ import annotations

from livecommerce.errors import AppError
from livecommerce.realtime.broker import Broker


class UserRateLimit:
    """At most `rate` actions a second per user, in bursts of up to `burst`, on every node."""

    def __init__(self, broker: Broker, action: str, rate: float, burst: float, message: str) -> None:
        self.broker = broker
        self.action = action
        self.rate = rate
        self.burst = burst
        self.message = message

    async def check(self, user_id: int) -> None:
        """Take one action for the user; `rate_limited` (with `retry_after`) once they are spent."""
        wait = await self.broker.take_token(f"{self.action}:{user_id}", self.rate, self.burst)
        if wait > 0:
            raise AppError("rate_limited", self.message, details={"retry_after": round(wait, 2)})
