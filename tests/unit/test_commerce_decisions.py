"""The pure parts of the commerce plane: batch decisions, sale phases, stock throttling, order input."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from helpers import wait_for

from livecommerce.commerce.batching import Outcome, SaleSnapshot, Tap, TapBatcher, decide_batch, sale_phase
from livecommerce.commerce.events import HighestVersion, StockThrottle
from livecommerce.commerce.lookups import SharedLookup
from livecommerce.commerce.orders import check_order_input
from livecommerce.db.models import SaleState
from livecommerce.errors import AppError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def snapshot(available: int = 10, limit: int = 2, state: SaleState = SaleState.LIVE, **times) -> SaleSnapshot:
    return SaleSnapshot(
        state,
        available,
        limit,
        times.get("starts_at", NOW - timedelta(minutes=1)),
        times.get("ends_at", NOW + timedelta(minutes=10)),
        times.get("now", NOW),
    )


def test_batch_reserves_in_arrival_order_until_stock_runs_out():
    taps = [Tap(user, f"key-{user}", 1) for user in range(5)]
    plan = decide_batch(snapshot(available=3), taps, {})
    assert plan.outcomes == [Outcome.RESERVED] * 3 + [Outcome.SOLD_OUT] * 2
    assert plan.taken == 3
    assert plan.reserved() == [0, 1, 2]


def test_per_viewer_limit_counts_units_already_held_and_earlier_taps_in_the_batch():
    taps = [Tap(1, "a-key-001", 1), Tap(1, "a-key-002", 1), Tap(2, "b-key-001", 2)]
    plan = decide_batch(snapshot(limit=2), taps, {1: 1})
    assert plan.outcomes == [Outcome.RESERVED, Outcome.LIMIT_EXCEEDED, Outcome.RESERVED]
    assert plan.added_units == {1: 1, 2: 2}
    assert plan.taken == 3


def test_repeated_key_in_one_batch_shares_the_first_answer_and_reserves_once():
    taps = [Tap(7, "same-key-1", 1), Tap(8, "other-key", 1), Tap(7, "same-key-1", 1)]
    plan = decide_batch(snapshot(limit=5), taps, {})
    assert plan.outcomes[2] is Outcome.RESERVED and plan.first_of == [0, 1, 0]
    assert plan.taken == 2
    assert plan.reserved() == [0, 1]


def test_a_batch_writes_its_rows_in_key_order_whatever_order_the_taps_arrived_in():
    """Every batch takes its row locks in one order, so batches sharing keys cannot deadlock."""
    taps = [
        Tap(9, "key-zz-001", 1),
        Tap(3, "key-bb-001", 1),
        Tap(9, "key-aa-001", 1),
        Tap(3, "key-bb-001", 1),  # repeated: recorded once, by its first occurrence
        Tap(5, "key-cc-001", 9),  # over the limit: recorded, holds nothing
    ]
    plan = decide_batch(snapshot(limit=2), taps, {})
    answers, buyers = plan.in_lock_order(taps)
    assert [(taps[i].user_id, taps[i].key) for i in answers] == [
        (3, "key-bb-001"),
        (5, "key-cc-001"),
        (9, "key-aa-001"),
        (9, "key-zz-001"),
    ]
    assert buyers == [3, 9]
    shuffled = [taps[i] for i in (4, 2, 1, 0)]
    again, buyers_again = decide_batch(snapshot(limit=2), shuffled, {}).in_lock_order(shuffled)
    assert [(shuffled[i].user_id, shuffled[i].key) for i in again] == [
        (taps[i].user_id, taps[i].key) for i in answers
    ]
    assert buyers_again == buyers


def test_repeated_key_asking_for_another_quantity_in_one_batch_is_refused_and_reserves_nothing():
    taps = [Tap(7, "same-key-1", 1), Tap(7, "same-key-1", 2), Tap(7, "same-key-1", 1)]
    plan = decide_batch(snapshot(limit=5), taps, {})
    assert plan.outcomes == [Outcome.RESERVED, Outcome.KEY_REUSED, Outcome.RESERVED]
    assert plan.first_of == [0, 0, 0]
    assert plan.taken == 1


def test_larger_quantity_than_left_is_sold_out_but_a_smaller_one_still_fits():
    plan = decide_batch(snapshot(available=2, limit=5), [Tap(1, "k-0000001", 3), Tap(2, "k-0000002", 2)], {})
    assert plan.outcomes == [Outcome.SOLD_OUT, Outcome.RESERVED]


@pytest.mark.parametrize(
    ("sale", "expected"),
    [
        (snapshot(state=SaleState.SCHEDULED), Outcome.NOT_STARTED),
        (snapshot(starts_at=NOW + timedelta(seconds=1)), Outcome.NOT_STARTED),
        (snapshot(state=SaleState.ENDED), Outcome.ENDED),
        (snapshot(ends_at=NOW), Outcome.ENDED),
        (snapshot(), None),
        (snapshot(state=SaleState.SOLD_OUT, available=0), None),
    ],
)
def test_sale_phase(sale, expected):
    assert sale_phase(sale) is expected


def test_sold_out_state_answers_sold_out_and_closed_phases_answer_for_every_tap():
    assert decide_batch(
        snapshot(state=SaleState.SOLD_OUT, available=0), [Tap(1, "k-0000001", 1)], {}
    ).outcomes == [Outcome.SOLD_OUT]
    plan = decide_batch(snapshot(state=SaleState.ENDED), [Tap(1, "k-0000001", 1), Tap(2, "k-0000002", 1)], {})
    assert plan.outcomes == [Outcome.ENDED, Outcome.ENDED] and plan.taken == 0


def test_stock_throttle_sends_at_most_once_per_interval_and_again_after_a_late_change():
    throttle = StockThrottle(0.25)
    assert throttle.changed(1, now=10.0) == 0.0
    assert throttle.changed(1, now=10.01) is None  # rides on the pending send
    throttle.sending(1, now=10.02)
    assert throttle.changed(1, now=10.05) is None  # the send under way is followed by one more
    assert throttle.changed(2, now=10.05) == 0.0  # other sales are independent
    assert throttle.sent(1, now=10.06) == pytest.approx(0.21)
    assert throttle.changed(1, now=10.1) is None  # rides on that one
    throttle.sending(1, now=10.27)
    assert throttle.sent(1, now=10.3) is None  # nothing changed while it was sent
    assert throttle.changed(1, now=10.6) == 0.0


def test_highest_version_keeps_only_newer_versions_per_sale():
    seen = HighestVersion()
    arrivals = [(1, 3), (1, 5), (1, 4), (2, 1), (1, 5), (1, 6), (2, 0)]
    assert [seen.advance(sale, version) for sale, version in arrivals] == [
        True,
        True,
        False,  # older than 5, from a node whose read came first
        True,  # another sale has its own versions
        False,  # already shown
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("quantity", "key"),
    [
        (0, "good-key-1"),
        (-1, "good-key-1"),
        (101, "good-key-1"),
        (10**12, "good-key-1"),
        ("1", "good-key-1"),
        (True, "good-key-1"),
        (1, "short"),
        (1, "has space in it"),
        (1, "x" * 101),
        (1, None),
        (1, 12345678),
    ],
)
def test_bad_order_input_is_a_typed_invalid_error(quantity, key):
    with pytest.raises(AppError) as caught:
        check_order_input(quantity, key)
    assert caught.value.code == "invalid"


async def test_batcher_groups_taps_that_arrive_while_a_batch_is_in_flight():
    sizes: list[int] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def decide(sale_id: int, taps: list[Tap], _lane: object) -> list[str]:
        sizes.append(len(taps))
        started.set()
        if len(sizes) == 1:
            await release.wait()
        return [f"{sale_id}:{tap.key}" for tap in taps]

    batcher = TapBatcher(decide, window_s=0)
    first = asyncio.create_task(batcher.submit(1, Tap(1, "first-key", 1)))
    await started.wait()
    rest = [asyncio.create_task(batcher.submit(1, Tap(i, f"key-{i:05d}", 1))) for i in range(2, 12)]
    await asyncio.sleep(0)
    release.set()
    assert await first == "1:first-key"
    assert await asyncio.gather(*rest) == [f"1:key-{i:05d}" for i in range(2, 12)]
    assert sizes == [1, 10]


async def test_batcher_fails_every_tap_of_a_failed_batch_and_keeps_serving():
    calls = 0

    async def decide(sale_id: int, taps: list[Tap], _lane: object) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return ["ok"] * len(taps)

    batcher = TapBatcher(decide, window_s=0)
    with pytest.raises(ConnectionError):
        await batcher.submit(1, Tap(1, "key-00001", 1))
    assert await batcher.submit(1, Tap(1, "key-00002", 1)) == "ok"


async def test_shared_lookup_runs_one_load_for_concurrent_misses_and_forgets_failures():
    calls: list[int] = []
    gate = asyncio.Event()

    async def load(key: int) -> str:
        calls.append(key)
        await gate.wait()
        if key < 0:
            raise LookupError("no such thing")
        return f"value-{key}"

    lookup = SharedLookup(load)
    waiting = [asyncio.create_task(lookup.get(1)) for _ in range(50)]
    failing = asyncio.create_task(lookup.get(-1))
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["value-1"] * 50
    with pytest.raises(LookupError):
        await failing
    assert await lookup.get(1) == "value-1"
    assert calls == [1, -1]
    with pytest.raises(LookupError):
        await lookup.get(-1)
    assert calls == [1, -1, -1]  # the failure was not cached


async def test_shared_lookup_calls_back_at_once_when_cached_and_once_per_waiter_otherwise():
    calls: list[int] = []
    gate = asyncio.Event()

    async def load(key: int) -> str:
        calls.append(key)
        await gate.wait()
        if key < 0:
            raise LookupError("no such thing")
        return f"value-{key}"

    lookup = SharedLookup(load)
    got: list[object] = []
    for _ in range(100):
        lookup.get_soon(1, got.append)
    lookup.get_soon(-1, got.append)
    assert got == []
    gate.set()
    await wait_for(lambda: len(got) == 101)
    assert got[:100] == ["value-1"] * 100
    assert isinstance(got[100], LookupError)
    assert calls == [1, -1]
    answered: list[object] = []
    lookup.get_soon(1, answered.append)
    assert answered == ["value-1"]  # cached: called back before get_soon returns


async def test_enqueued_taps_get_their_answers_through_callbacks_after_the_batch():
    async def decide(sale_id: int, taps: list[Tap], _lane: object) -> list[str]:
        if sale_id == 2:
            raise ConnectionError("database went away")
        return [tap.key for tap in taps]

    batcher = TapBatcher(decide, window_s=0)
    answers: dict[str, object] = {}
    for i in range(20):
        batcher.enqueue(
            1, Tap(i, f"key-{i:05d}", 1), lambda answer, i=i: answers.__setitem__(f"ok-{i}", answer)
        )
    batcher.enqueue(2, Tap(1, "key-failing", 1), lambda answer: answers.__setitem__("failed", answer))
    assert answers == {}
    await wait_for(lambda: len(answers) == 21)
    assert [answers[f"ok-{i}"] for i in range(20)] == [f"key-{i:05d}" for i in range(20)]
    assert isinstance(answers["failed"], ConnectionError)


async def test_a_lane_that_cannot_be_opened_fails_the_next_batch_and_the_one_after_is_served():
    opened = 0

    @contextlib.asynccontextmanager
    async def open_lane():
        nonlocal opened
        opened += 1
        if opened == 1:
            raise ConnectionError("database unreachable")
        yield "lane"

    async def decide(sale_id: int, taps: list[Tap], lane: object) -> list[str]:
        return [f"{lane}:{tap.key}" for tap in taps]

    batcher = TapBatcher(decide, window_s=0, open_lane=open_lane)
    with pytest.raises(ConnectionError):
        await batcher.submit(1, Tap(1, "key-00001", 1))
    assert await batcher.submit(1, Tap(1, "key-00002", 1)) == "lane:key-00002"
