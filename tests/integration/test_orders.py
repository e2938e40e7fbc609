"""Orders under real concurrency against real PostgreSQL, through the real server (HTTP and WS)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import asyncpg
import pytest
from commerce_client import call, dsn_of, ledger, new_key
from helpers import start_server, wait_for
from room_client import RoomClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from livecommerce.appkeys import COMMERCE, ENGINE
from livecommerce.commerce.batching import Outcome, Tap
from livecommerce.commerce.expiry import sweep_once
from livecommerce.commerce.orders import autocommit
from livecommerce.commerce.reservation import WRITE_BATCH, SaleChanged, reserve_batch


def check_balanced(book, allocated: int, limit: int) -> None:
    assert book.allocated == allocated
    assert book.available >= 0
    assert book.taken + book.available == book.allocated
    assert book.sku_reserved <= book.on_hand
    assert all(units <= limit for units in book.per_user.values())
    open_units = {user: units for user, units in book.per_user.items() if units}
    assert book.ledger_per_user == open_units


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "row_lock"])
async def test_hundreds_of_buyers_on_one_sku_never_oversell(
    settings, database_url, http, sale_floor, batching
):
    """300 buyers, 3 taps each (two keys, one of them sent twice), half over HTTP, half over WS."""
    server = await start_server(settings.model_copy(update={"order_batching": batching}))
    try:
        floor = await sale_floor(server, stock=500, allocated=100, per_user_limit=2, buyers=300)
        world, sale, buyers = floor.world, floor.sale, floor.buyers
        sockets = await asyncio.gather(
            *(RoomClient.connect(server.room_ws(world.room_id, token)) for _, token in buyers[150:])
        )
        try:
            await asyncio.gather(*(client.event("snapshot", timeout=60) for client in sockets))
            body = {"sale_id": sale["sale_id"], "quantity": 1}

            async def over_http(token: str, key: str) -> dict:
                status, answer = await call(
                    http, "POST", f"{server.url}/api/orders", token, {**body, "idempotency_key": key}
                )
                assert status in (200, 409), answer
                return answer if status == 200 else {"outcome": answer["error"]["code"], "order": None}

            async def over_ws(client: RoomClient, key: str) -> dict:
                reply = await client.send(
                    "order.place",
                    {**body, "idempotency_key": key},
                )
                if reply["type"] == "ack":
                    return reply["data"]
                return {"outcome": reply["error"]["code"], "order": None}

            keys = [(new_key(), new_key()) for _ in buyers]
            taps = []
            for index, (first, second) in enumerate(keys):
                token = buyers[index][1]
                send = (
                    (lambda key, t=token: over_http(t, key))
                    if index < 150
                    else (lambda key, c=sockets[index - 150]: over_ws(c, key))
                )
                taps += [
                    (index, first, send(first)),
                    (index, second, send(second)),
                    (index, first, send(first)),
                ]
            random.shuffle(taps)
            answers = await asyncio.gather(*(coro for _, _, coro in taps))
        finally:
            await asyncio.gather(*(client.close() for client in sockets))
        by_key: dict[str, list[dict]] = {}
        for (_, key, _), answer in zip(taps, answers, strict=True):
            by_key.setdefault(key, []).append(answer)
        for key, same in by_key.items():
            assert all(answer == same[0] for answer in same), key  # a repeated key gets the first answer
        outcomes = Counter(same[0]["outcome"] for same in by_key.values())
        assert outcomes["reserved"] == 100
        assert set(outcomes) <= {"reserved", "sold_out", "limit_exceeded"}
        book = await ledger(dsn_of(database_url), sale["sale_id"])
        check_balanced(book, allocated=100, limit=2)
        assert book.available == 0 and book.state == "sold_out" and book.taken == 100
        assert book.answers == len(by_key)  # every key answered exactly once
        acknowledged = {same[0]["order"]["order_id"] for same in by_key.values() if same[0]["order"]}
        conn = await asyncpg.connect(dsn_of(database_url))
        try:
            stored = {
                row["id"]
                for row in await conn.fetch("SELECT id FROM orders WHERE sale_id = $1", sale["sale_id"])
            }
        finally:
            await conn.close()
        assert stored == acknowledged
    finally:
        await server.runner.cleanup()


async def test_expiry_cancel_and_restock_interleave_with_buying(server, database_url, http, sale_floor):
    floor = await sale_floor(server, stock=100, allocated=20, buyers=120)
    world, sale, buyers = floor.world, floor.sale, floor.buyers
    dsn = dsn_of(database_url)
    cancelled = 0

    async def buy_and_maybe_cancel(token: str) -> None:
        nonlocal cancelled
        for _ in range(3):
            status, answer = await call(
                http,
                "POST",
                f"{server.url}/api/orders",
                token,
                {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
            )
            if status == 200 and random.random() < 0.3:
                order_id = answer["order"]["order_id"]
                status, _ = await call(http, "POST", f"{server.url}/api/orders/{order_id}/cancel", token)
                cancelled += status == 200

    async def expire_some() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(15):
                await conn.execute(
                    "UPDATE orders SET reserved_until = now() - interval '1 second' WHERE id IN "
                    "(SELECT id FROM orders WHERE status = 'reserved' ORDER BY random() LIMIT 3)"
                )
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    async def restock() -> None:
        for _ in range(2):
            await asyncio.sleep(0.1)
            status, _ = await call(
                http,
                "POST",
                f"{server.url}/api/sales/{sale['sale_id']}/restock",
                world.tokens["operator"],
                {"units": 10},
            )
            assert status == 200

    await asyncio.gather(*(buy_and_maybe_cancel(token) for _, token in buyers), expire_some(), restock())

    async def nothing_due() -> bool:
        conn = await asyncpg.connect(dsn)
        try:
            return not await conn.fetchval(
                "SELECT count(*) FROM orders WHERE status = 'reserved' AND reserved_until <= now()"
            )
        finally:
            await conn.close()

    await wait_for(nothing_due, timeout=30, message="the sweeper to expire every due order")
    book = await ledger(dsn, sale["sale_id"])
    check_balanced(book, allocated=40, limit=1)
    assert book.sku_reserved == 40
    conn = await asyncpg.connect(dsn)
    try:
        statuses = dict(await conn.fetch("SELECT status::text, count(*) FROM orders GROUP BY 1"))
    finally:
        await conn.close()
    assert statuses.get("cancelled", 0) == cancelled
    assert statuses.get("expired", 0) > 0


async def test_several_sweepers_expire_each_order_once(server, database_url, http, sale_floor):
    """Sweepers on several nodes: SKIP LOCKED splits the work, each order's units come back once."""
    floor = await sale_floor(server, stock=300, allocated=200, per_user_limit=2, buyers=100)
    sale, buyers = floor.sale, floor.buyers
    await asyncio.gather(
        *(
            call(
                http,
                "POST",
                f"{server.url}/api/orders",
                token,
                {"sale_id": sale["sale_id"], "quantity": 2, "idempotency_key": new_key()},
            )
            for _, token in buyers
        )
    )
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.reserved_orders == 100 and book.available == 0
    engine = server.app[ENGINE]
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE orders SET reserved_until = now() - interval '1 second'"))
    expired: list[int] = []

    async def node() -> None:
        while True:
            async with engine.begin() as conn:
                closed = await sweep_once(conn, limit=7)
            if not closed.orders:
                return
            expired.extend(order["order_id"] for order in closed.orders)

    await asyncio.gather(*(node() for _ in range(4)))
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert len(expired) == len(set(expired)) <= 100
    assert book.reserved_orders == 0 and book.available == 200 and book.state == "live"
    check_balanced(book, allocated=200, limit=2)
    assert book.ledger_per_user == {}


async def test_two_nodes_deciding_the_same_sale_stay_exact(server, settings, database_url, http, sale_floor):
    """Two server processes' batches contend on one sale; a key sent to both is decided once."""
    other = await start_server(settings)
    try:
        floor = await sale_floor(server, stock=200, allocated=60, buyers=150)
        sale, buyers = floor.sale, floor.buyers

        async def tap(node: str, token: str, key: str) -> tuple[str, dict]:
            status, answer = await call(
                http,
                "POST",
                f"{node}/api/orders",
                token,
                {"sale_id": sale["sale_id"], "idempotency_key": key},
            )
            assert status in (200, 409), answer
            return key, answer

        taps = []
        for _, token in buyers:
            shared = new_key()
            taps += [
                tap(server.url, token, shared),
                tap(other.url, token, shared),
                tap(other.url, token, new_key()),
            ]
        random.shuffle(taps)
        answers = await asyncio.gather(*taps)
        by_key: dict[str, list[dict]] = {}
        for key, answer in answers:
            by_key.setdefault(key, []).append(answer)
        assert all(all(a == same[0] for a in same) for same in by_key.values())
        reserved = [same[0] for same in by_key.values() if same[0].get("outcome") == "reserved"]
        assert len(reserved) == 60
        book = await ledger(dsn_of(database_url), sale["sale_id"])
        check_balanced(book, allocated=60, limit=1)
        assert book.available == 0 and book.answers == len(by_key)
    finally:
        await other.runner.cleanup()


class ChangeBeforeWrite:
    """An autocommit connection that lets another transaction change the sale between a batch's
    read and its write (the window the optimistic path must guard)."""

    def __init__(self, conn, change):
        self.conn = conn
        self.change = change

    async def execute(self, statement, params=None):
        if statement is WRITE_BATCH and self.change is not None:
            change, self.change = self.change, None
            await change()
        return await self.conn.execute(statement, params)


@pytest.mark.parametrize(
    ("competing", "reserved_after"),
    [
        ("UPDATE flash_sales SET available = available - 2 WHERE id = :sale", 1),  # another node took units
        ("UPDATE flash_sales SET sale_price_minor = sale_price_minor + 100 WHERE id = :sale", 3),  # repriced
        ("UPDATE flash_sales SET state = 'ended', ends_at = now() WHERE id = :sale", 0),  # ended
        ("INSERT INTO sale_buyers (sale_id, user_id, units) SELECT :sale, :user, 1", 2),  # buyer got a unit
    ],
    ids=["stock", "price", "ended", "holdings"],
)
async def test_an_optimistic_batch_whose_sale_changed_writes_nothing_and_is_decided_again(
    server, database_url, sale_floor, competing, reserved_after
):
    floor = await sale_floor(server, stock=50, allocated=3, buyers=3)
    sale_id, buyers = floor.sale_id, floor.buyers
    taps = [Tap(user_id, new_key(), 1) for user_id, _ in buyers]
    engine = server.app[ENGINE]
    before = await ledger(dsn_of(database_url), sale_id)

    async def change() -> None:
        async with engine.begin() as other:
            await other.execute(text(competing), {"sale": sale_id, "user": buyers[0][0]})

    async with autocommit(engine) as conn:
        with pytest.raises(SaleChanged):
            await reserve_batch(ChangeBeforeWrite(conn, change), sale_id, taps, 600, locked=False)
    after = await ledger(dsn_of(database_url), sale_id)
    assert (after.answers, after.reserved_orders) == (before.answers, before.reserved_orders) == (0, 0)
    assert after.ledger_per_user == ({buyers[0][0]: 1} if "sale_buyers" in competing else {})

    # the service decides the same taps again on what the sale now is; nothing is oversold
    async with autocommit(engine) as lane:
        answers = await server.app[COMMERCE].orders._decide_batch(sale_id, taps, lane)
    book = await ledger(dsn_of(database_url), sale_id)
    reserved = sum(answer.outcome is Outcome.RESERVED for answer in answers)
    assert book.answers == len(answers) == 3
    assert book.taken == reserved and book.available == after.available - reserved
    assert all(units <= 1 for units in book.ledger_per_user.values())
    assert reserved == reserved_after


async def test_batches_writing_overlapping_keys_wait_for_each_other_instead_of_deadlocking(
    server, sale_floor
):
    """Two nodes' batches share keys, taken in opposite arrival orders: each takes its locks in one
    order (the sale row, then its rows in key order), so the later one waits for the earlier one
    (and is decided again) instead of both holding a row the other needs."""
    floor = await sale_floor(server, stock=50, allocated=10, buyers=2)
    sale = floor.sale
    buyers = sorted(user_id for user_id, _ in floor.buyers)
    low, high = Tap(buyers[0], new_key(), 1), Tap(buyers[1], new_key(), 1)
    engine = server.app[ENGINE]

    async def waiting_on_locks() -> int:
        async with engine.connect() as conn:
            return await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )

    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await second.begin()
        await reserve_batch(first, sale["sale_id"], [low], 600, locked=False)  # holds low's key
        # the other node's batch got the same taps in the opposite order
        other = asyncio.create_task(reserve_batch(second, sale["sale_id"], [high, low], 600, locked=False))
        await wait_for(waiting_on_locks, message="the other batch to wait for the first one's key")
        await reserve_batch(first, sale["sale_id"], [high], 600, locked=False)
        await first.commit()
        with pytest.raises((SaleChanged, IntegrityError)):  # the service decides such a batch again
            await other
