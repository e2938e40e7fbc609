"""The hot-SKU path: concurrent taps on one sale are decided together, many per transaction.

`decide_batch` is the whole decision as a pure function (sale phase, per-viewer limit, stock,
repeated keys inside one batch). `TapBatcher` is the thin async shell that gathers taps per
sale while the previous batch is being written (group commit) and hands each caller its own
answer once the batch's transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from livecommerce.db.models import SaleState

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    """Every tap gets exactly one of these (bad input is refused before it becomes a tap)."""

    RESERVED = "reserved"
    SOLD_OUT = "sold_out"
    LIMIT_EXCEEDED = "limit_exceeded"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    INSUFFICIENT_STOCK = "insufficient_stock"
    """Buying at list price: some units are left, fewer than the tap asked for."""
    KEY_REUSED = "idempotency_key_reused"
    """The key already answered another purchase (another sale or quantity); nothing is
    recorded for this tap, and the key keeps its first answer."""


@dataclass(frozen=True, slots=True)
class Tap:
    """One buyer's Buy: who, with which idempotency key, how many units."""

    user_id: int
    key: str
    quantity: int


@dataclass(frozen=True, slots=True)
class SaleSnapshot:
    """The sale row as read under its lock, with the database's clock."""

    state: SaleState
    available: int
    per_user_limit: int
    starts_at: datetime
    ends_at: datetime
    now: datetime


def sale_phase(sale: SaleSnapshot) -> Outcome | None:
    """NOT_STARTED or ENDED when taps cannot be served at all; None while the sale is open."""
    if sale.state is SaleState.ENDED or sale.now >= sale.ends_at:
        return Outcome.ENDED
    if sale.state is SaleState.SCHEDULED or sale.now < sale.starts_at:
        return Outcome.NOT_STARTED
    return None


@dataclass(slots=True)
class BatchPlan:
    """What one batch decided: an outcome per tap, and the writes that make it true."""

    outcomes: list[Outcome]
    first_of: list[int]
    """Index of the tap that records each tap's key (itself, or an earlier tap with the same key,
    whose answer it shares unless it asked for another quantity: KEY_REUSED)."""
    taken: int = 0
    """Units the batch reserves in total."""
    added_units: dict[int, int] = field(default_factory=dict)
    """Units each buyer reserves in this batch (the per-viewer ledger's increments)."""

    def in_lock_order(self, taps: Sequence[Tap]) -> tuple[list[int], list[int]]:
        """The rows a batch writes, in the one order every batch takes their locks: the taps that
        record an answer (first occurrences of their keys) by (user id, key), and the buyers whose
        holdings grow by user id. Two batches sharing keys then never wait for each other in a
        cycle (a deadlock); the later one waits, then finds the key answered."""
        firsts = sorted(
            (i for i, first in enumerate(self.first_of) if first == i),
            key=lambda i: (taps[i].user_id, taps[i].key),
        )
        return firsts, sorted(self.added_units)

    def reserved(self) -> list[int]:
        """Indexes of the taps that reserve units (first occurrences only)."""
        return [
            i
            for i, outcome in enumerate(self.outcomes)
            if outcome is Outcome.RESERVED and self.first_of[i] == i
        ]


def decide_batch(sale: SaleSnapshot, taps: Sequence[Tap], held: Mapping[int, int]) -> BatchPlan:
    """Decide taps in arrival order. `held` is what each buyer already holds in this sale.

    Taps here have never been answered before; a key repeated inside the batch gets the first
    occurrence's answer (KEY_REUSED if it asks for another quantity) and reserves nothing more.
    """
    phase = sale_phase(sale)
    available = sale.available
    holding = dict(held)
    plan = BatchPlan(outcomes=[], first_of=[])
    seen: dict[tuple[int, str], int] = {}
    for index, tap in enumerate(taps):
        first = seen.setdefault((tap.user_id, tap.key), index)
        plan.first_of.append(first)
        if first != index:
            same = taps[first].quantity == tap.quantity
            plan.outcomes.append(plan.outcomes[first] if same else Outcome.KEY_REUSED)
            continue
        already = holding.get(tap.user_id, 0)
        if phase is not None:
            outcome = phase
        elif already + tap.quantity > sale.per_user_limit:
            outcome = Outcome.LIMIT_EXCEEDED
        elif available < tap.quantity:
            outcome = Outcome.SOLD_OUT
        else:
            outcome = Outcome.RESERVED
            available -= tap.quantity
            holding[tap.user_id] = already + tap.quantity
            plan.added_units[tap.user_id] = plan.added_units.get(tap.user_id, 0) + tap.quantity
            plan.taken += tap.quantity
        plan.outcomes.append(outcome)
    return plan


DecideFn = Callable[[int, list[Tap], Any], Awaitable[list[Any]]]
"""`decide(sale_id, taps, lane)`: one atomic decision on the lane, one answer per tap, in order."""
OpenLane = Callable[[], AbstractAsyncContextManager[Any]]
OnAnswer = Callable[[Any], None]
"""Takes a tap's answer, or the exception its batch failed with (the tap's one callback)."""


@dataclass(slots=True)
class _Queue:
    taps: list[Tap] = field(default_factory=list)
    on_answers: list[OnAnswer] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None


class TapBatcher:
    """Per sale, one batch in flight; taps arriving meanwhile form the next batch.

    `decide(sale_id, taps, lane)` decides the batch atomically (its writes commit together or
    not at all) and returns one answer per tap, in order. A tap's answer is delivered only after
    those writes committed, so every acknowledged reservation is durable. If the decision
    fails, every tap in it gets the exception.

    A sale's batches, one after another, share one lane (`open_lane()`: a database connection,
    held while taps keep coming), so a batch does not wait for a connection from the pool. A
    failed batch gives its lane up; the next batch opens a new one.
    """

    def __init__(
        self,
        decide: DecideFn,
        *,
        window_s: float,
        max_batch: int = 2000,
        open_lane: OpenLane = contextlib.nullcontext,
    ) -> None:
        self._decide = decide
        self._open_lane = open_lane
        self._window_s = window_s
        self._max_batch = max_batch
        self._queues: dict[int, _Queue] = {}
        self.batches = 0
        self.taps = 0

    def enqueue(self, sale_id: int, tap: Tap, on_answer: OnAnswer) -> None:
        """Add a tap to its sale's next batch; `on_answer` gets its answer (the storm's hot path:
        no task or future per tap)."""
        queue = self._queues.get(sale_id)
        if queue is None:
            queue = self._queues[sale_id] = _Queue()
        queue.taps.append(tap)
        queue.on_answers.append(on_answer)
        if queue.runner is None:
            queue.runner = asyncio.create_task(self._run(sale_id, queue))

    async def submit(self, sale_id: int, tap: Tap) -> Any:
        """Add a tap and wait for its answer."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def deliver(answer: Any) -> None:
            if waiter.done():
                return
            if isinstance(answer, BaseException):
                waiter.set_exception(answer)
            else:
                waiter.set_result(answer)

        self.enqueue(sale_id, tap, deliver)
        return await waiter

    async def _run(self, sale_id: int, queue: _Queue) -> None:
        try:
            if self._window_s:
                await asyncio.sleep(self._window_s)
            async with contextlib.AsyncExitStack() as stack:
                try:
                    lane = await stack.enter_async_context(self._open_lane())
                except Exception as exc:  # no connection: the next batch fails, as a failed decide would
                    taps, on_answers = self._next_batch(queue)
                    _answer_all(on_answers, [exc] * len(taps))
                    return
                while queue.taps:
                    taps, on_answers = self._next_batch(queue)
                    try:
                        answers = await self._decide(sale_id, taps, lane)
                    except Exception as exc:
                        _answer_all(on_answers, [exc] * len(taps))
                        break
                    # Answer after the next batch has started: its first round trip to the
                    # database overlaps with writing these answers.
                    asyncio.get_running_loop().call_soon(_answer_all, on_answers, answers)
        finally:
            queue.runner = None
            if not queue.taps:
                self._queues.pop(sale_id, None)
            else:
                queue.runner = asyncio.create_task(self._run(sale_id, queue))

    def _next_batch(self, queue: _Queue) -> tuple[list[Tap], list[OnAnswer]]:
        taps, on_answers = queue.taps[: self._max_batch], queue.on_answers[: self._max_batch]
        del queue.taps[: self._max_batch], queue.on_answers[: self._max_batch]
        self.batches += 1
        self.taps += len(taps)
        return taps, on_answers

    async def close(self) -> None:
        for queue in list(self._queues.values()):
            if queue.runner is not None:
                await asyncio.gather(queue.runner, return_exceptions=True)


def _answer_all(on_answers: list[OnAnswer], answers: list[Any]) -> None:
    for on_answer, answer in zip(on_answers, answers, strict=True):
        try:
            on_answer(answer)
        except Exception:
            log.exception("delivering a tap's answer failed")
