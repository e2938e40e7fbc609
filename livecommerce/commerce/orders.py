"""Placing, cancelling and listing orders: the purchase is one short write per batch of taps.

Two paths decide taps, with the same answers:

- batched (default): `reserve_batch` reads the sale and every tap's state in one statement,
  decides every tap of the batch with `batching.decide_batch`, and writes all orders, answers
  and per-viewer ledger rows and takes the units in one more statement, which rolls back
  unless the sale is still as read (optimistic; the sale row lock is the fallback);
- row lock (`ORDER_BATCHING=false`, the baseline): `reserve_one` runs one transaction per tap:
  conditional decrement, conditional per-viewer upsert, order row.

Each buyer's idempotency key is recorded with its first answer in `order_attempts`, in the same
statement or transaction as the reservation; a repeated key gets that answer back and reserves
nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize, may
from livecommerce.commerce import ledger
from livecommerce.commerce.batching import Outcome, SaleSnapshot, Tap, TapBatcher, decide_batch
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.sales import SaleDirectory, SaleRef, read_sale, sale_view
from livecommerce.db.models import SaleState
from livecommerce.errors import AppError

MAX_QUANTITY = 100
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{8,100}")
KEY_CONFLICT_RETRIES = 3
OPTIMISTIC_TRIES = 2  # then the batch is decided under the sale's row lock, which always succeeds

MESSAGES = {
    Outcome.SOLD_OUT: "sold out",
    Outcome.LIMIT_EXCEEDED: "that would exceed the per-viewer limit of this sale",
    Outcome.NOT_STARTED: "the sale has not started",
    Outcome.ENDED: "the sale has ended",
    Outcome.KEY_REUSED: "this idempotency key was already used for another purchase; send a new key for each purchase",
}

ORDER_COLUMNS = (
    "o.id, o.room_id, o.sale_id, o.sku_id, o.user_id, o.status, o.quantity, o.unit_price_minor, "
    "o.amount_minor, o.currency, o.reserved_until, o.created_at, o.paid_at, o.closed_at, u.display_name AS buyer"
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def order_view(row: Row[Any]) -> dict[str, Any]:
    return {
        "order_id": row.id,
        "room_id": row.room_id,
        "sale_id": row.sale_id,
        "sku_id": row.sku_id,
        "user_id": row.user_id,
        "buyer": row.buyer,
        "status": str(row.status),
        "quantity": row.quantity,
        "unit_price_minor": row.unit_price_minor,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "reserved_until": _iso(row.reserved_until),
        "created_at": _iso(row.created_at),
        "paid_at": _iso(row.paid_at),
        "closed_at": _iso(row.closed_at),
    }


@dataclass(frozen=True, slots=True)
class Answer:
    """The one answer a tap gets; `order` is set when it reserved."""

    outcome: Outcome
    order: dict[str, Any] | None = None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "order": self.order}

    def result(self) -> dict[str, Any] | AppError:
        """The answer's data when it reserved; the typed error (sold_out, …) otherwise."""
        if self.outcome is not Outcome.RESERVED:
            return AppError(self.outcome.value, MESSAGES[self.outcome])
        return self.to_dict()

    def accepted(self) -> dict[str, Any]:
        """The answer's data when it reserved; raises the typed error otherwise."""
        result = self.result()
        if isinstance(result, AppError):
            raise result
        return result


def check_order_input(quantity: Any, key: Any) -> None:
    """Refuse bad input before it becomes a tap: nothing is written for it."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise AppError("invalid", f"quantity: a whole number from 1 to {MAX_QUANTITY}")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise AppError("invalid", "idempotency_key: 8 to 100 characters from A-Z a-z 0-9 . _ : -")


def tap_of(who: Principal, quantity: Any, key: Any) -> Tap:
    """The tap, if this principal may place orders and the input is good."""
    authorize(who, "order.place")
    check_order_input(quantity, key)
    return Tap(who.user_id, key, quantity)


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement commits by itself (no BEGIN, no COMMIT)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def sale_in_room(ref: SaleRef, room_id: int | None) -> SaleRef:
    """The sale, if it runs in the room the tap came from (or the tap named no room)."""
    if room_id is not None and ref.room_id != room_id:
        raise AppError("invalid", "that sale runs in another room")
    return ref


PRIOR_ANSWERS = text(
    "SELECT a.user_id AS tap_user, a.idempotency_key AS tap_key, a.outcome, a.sale_id AS attempt_sale, "
    f"a.quantity AS attempt_quantity, {ORDER_COLUMNS} "
    "FROM order_attempts a "
    "JOIN unnest(CAST(:users AS bigint[]), CAST(:keys AS text[])) AS t(user_id, key) "
    "ON a.user_id = t.user_id AND a.idempotency_key = t.key "
    "LEFT JOIN orders o ON o.id = a.order_id LEFT JOIN users u ON u.id = o.user_id"
)
SALE_FOR_UPDATE = text(
    "SELECT id, room_id, merchant_id, sku_id, state, available, per_user_limit, sale_price_minor, currency, "
    "starts_at, ends_at, now() AS now FROM flash_sales WHERE id = :id FOR UPDATE"
)
SALE_AND_TAPS = text(
    "SELECT s.room_id AS sale_room, s.merchant_id AS sale_merchant, s.sku_id AS sale_sku, s.state AS sale_state, "
    "s.available AS sale_available, s.per_user_limit AS sale_limit, s.sale_price_minor AS sale_price, "
    "s.currency AS sale_currency, s.starts_at AS sale_starts, s.ends_at AS sale_ends, now() AS now, "
    "t.user_id AS tap_user, t.key AS tap_key, coalesce(b.units, 0) AS held, a.outcome, "
    f"a.sale_id AS attempt_sale, a.quantity AS attempt_quantity, {ORDER_COLUMNS} FROM flash_sales s "
    "CROSS JOIN unnest(CAST(:users AS bigint[]), CAST(:keys AS text[])) AS t(user_id, key) "
    "LEFT JOIN sale_buyers b ON b.sale_id = s.id AND b.user_id = t.user_id "
    "LEFT JOIN order_attempts a ON a.user_id = t.user_id AND a.idempotency_key = t.key "
    "LEFT JOIN orders o ON o.id = a.order_id LEFT JOIN users u ON u.id = o.user_id WHERE s.id = :sale"
)
INSERT_ORDERS = text(
    "WITH o AS (INSERT INTO orders (merchant_id, room_id, sale_id, sku_id, user_id, kind, status, quantity, "
    "unit_price_minor, amount_minor, currency, idempotency_key, reserved_until) "
    "SELECT :merchant, :room, :sale, :sku, t.user_id, 'sale', 'reserved', t.q, CAST(:price AS bigint), "
    "t.q * CAST(:price AS bigint), "
    ":currency, t.key, now() + make_interval(secs => CAST(:ttl AS double precision)) "
    "FROM unnest(CAST(:users AS bigint[]), CAST(:keys AS text[]), CAST(:qs AS int[])) AS t(user_id, key, q) "
    "RETURNING *) "
    f"SELECT o.idempotency_key AS tap_key, {ORDER_COLUMNS} FROM o JOIN users u ON u.id = o.user_id"
)
INSERT_ANSWERS = text(
    "INSERT INTO order_attempts (user_id, idempotency_key, sale_id, quantity, outcome, order_id) "
    "SELECT t.user_id, t.key, :sale, t.q, t.outcome, t.order_id FROM unnest(CAST(:users AS bigint[]), "
    "CAST(:keys AS text[]), CAST(:qs AS int[]), CAST(:outcomes AS text[]), CAST(:orders AS bigint[])) "
    "AS t(user_id, key, q, outcome, order_id)"
)
BATCH_TAPS = (
    "unnest(CAST(:users AS bigint[]), CAST(:keys AS text[]), CAST(:qs AS int[]), CAST(:outcomes AS text[])) "
    "AS t(user_id, key, q, outcome)"
)
WRITE_BATCH = text(
    "WITH ins AS (INSERT INTO orders (merchant_id, room_id, sale_id, sku_id, user_id, kind, status, quantity, "
    "unit_price_minor, amount_minor, currency, idempotency_key, reserved_until) "
    "SELECT :merchant, :room, :sale, :sku, t.user_id, 'sale', 'reserved', t.q, CAST(:price AS bigint), "
    "t.q * CAST(:price AS bigint), :currency, t.key, now() + make_interval(secs => CAST(:ttl AS double precision)) "
    f"FROM {BATCH_TAPS} WHERE t.outcome = 'reserved' RETURNING *), "
    "answers AS (INSERT INTO order_attempts (user_id, idempotency_key, sale_id, quantity, outcome, order_id) "
    f"SELECT t.user_id, t.key, :sale, t.q, t.outcome, ins.id FROM {BATCH_TAPS} "
    "LEFT JOIN ins ON ins.user_id = t.user_id AND ins.idempotency_key = t.key RETURNING 1), "
    f"held AS ({ledger.ADD_HELD}), "
    f"take AS ({ledger.TAKE_FROM_SALE}) "
    "SELECT c.available_after, o.idempotency_key AS tap_key, "
    f"{ORDER_COLUMNS} FROM (SELECT livecommerce_require((SELECT count(*) FROM answers) = :answer_rows "
    "AND (SELECT count(*) FROM held) = :held_rows AND (SELECT count(*) FROM take) = :take_rows, "
    "'the sale changed while the batch was decided') AS ok, (SELECT available FROM take) AS available_after) c "
    "LEFT JOIN ins o ON true LEFT JOIN users u ON u.id = o.user_id"
)


def _replay(row: Row[Any], sale_id: int, tap: Tap) -> Answer:
    """The first answer of a key sent again; KEY_REUSED if it now asks for another purchase."""
    if row.attempt_sale != sale_id or row.attempt_quantity != tap.quantity:
        return Answer(Outcome.KEY_REUSED)
    return Answer(Outcome(row.outcome), order_view(row) if row.id is not None else None, replayed=True)


@dataclass(slots=True)
class BatchResult:
    answers: list[Answer]
    room_id: int
    sold_out: bool
    taken: int


class SaleChanged(Exception):
    """The sale changed between a batch's read and its write; deciding again sees the change."""


SERIALIZATION_FAILURE = "40001"  # the SQLSTATE `livecommerce_require` raises


async def reserve_batch(
    conn: AsyncConnection, sale_id: int, taps: list[Tap], ttl_s: int, *, locked: bool
) -> BatchResult:
    """Decide a batch of taps for one sale: one read, a decision in Python, one write.

    `locked=False` (the hot path, on an autocommit connection): two statements and no lock
    held between them. The read sees the sale and every tap's earlier answer and holdings; the
    write stores every order, answer and ledger row and takes the units in one statement that
    requires, inside PostgreSQL, that nothing it relied on changed meanwhile (stock, price,
    limit, state, the buyers' holdings, the keys). If something did, the whole statement is
    rolled back and `SaleChanged` (or IntegrityError, for a key answered meanwhile) tells the
    caller to decide again.

    `locked=True` (inside the caller's transaction): the sale row is locked first, so the read
    sees every committed batch and the write's requirement holds.
    """
    if locked:
        await conn.execute(SALE_FOR_UPDATE, {"id": sale_id})
    rows = list(
        await conn.execute(
            SALE_AND_TAPS,
            {"sale": sale_id, "users": [t.user_id for t in taps], "keys": [t.key for t in taps]},
        )
    )
    if not rows:
        raise AppError("not_found", "no such sale")
    sale = rows[0]
    prior: dict[tuple[int, str], Row[Any]] = {}
    held: dict[int, int] = {}
    for row in rows:
        held[row.tap_user] = row.held
        if row.outcome is not None:
            prior[(row.tap_user, row.tap_key)] = row
    fresh = [tap for tap in taps if (tap.user_id, tap.key) not in prior]
    snapshot = SaleSnapshot(
        SaleState(sale.sale_state),
        sale.sale_available,
        sale.sale_limit,
        sale.sale_starts,
        sale.sale_ends,
        sale.now,
    )
    plan = decide_batch(snapshot, fresh, held)
    orders: dict[tuple[int, str], dict[str, Any]] = {}
    firsts = [i for i, first in enumerate(plan.first_of) if first == i]
    sold_out = False
    if firsts:
        buyers = list(plan.added_units)
        try:
            written = list(
                await conn.execute(
                    WRITE_BATCH,
                    {
                        "merchant": sale.sale_merchant,
                        "room": sale.sale_room,
                        "sale": sale_id,
                        "sku": sale.sale_sku,
                        "price": sale.sale_price,
                        "currency": sale.sale_currency,
                        "ttl": ttl_s,
                        "users": [fresh[i].user_id for i in firsts],
                        "keys": [fresh[i].key for i in firsts],
                        "qs": [fresh[i].quantity for i in firsts],
                        "outcomes": [plan.outcomes[i].value for i in firsts],
                        "buyers": buyers,
                        "buyer_units": [plan.added_units[user] for user in buyers],
                        "limit": sale.sale_limit,
                        "for_taps": True,
                        "expect_price": sale.sale_price,
                        "expect_limit": sale.sale_limit,
                        "n": plan.taken,
                        "answer_rows": len(firsts),
                        "held_rows": len(buyers),
                        "take_rows": int(plan.taken > 0),
                    },
                )
            )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == SERIALIZATION_FAILURE:
                raise SaleChanged from exc
            raise
        sold_out = written[0].available_after == 0
        orders = {(row.user_id, row.tap_key): order_view(row) for row in written if row.id is not None}
    decided = iter(
        [
            Answer(outcome, orders.get((tap.user_id, tap.key)) if outcome is Outcome.RESERVED else None)
            for tap, outcome in zip(fresh, plan.outcomes, strict=True)
        ]
    )
    answers = [
        _replay(prior[(t.user_id, t.key)], sale_id, t) if (t.user_id, t.key) in prior else next(decided)
        for t in taps
    ]
    return BatchResult(answers, sale.sale_room, sold_out, plan.taken)


async def reserve_one(conn: AsyncConnection, sale_id: int, tap: Tap, ttl_s: int) -> BatchResult:
    """The baseline: one tap, one transaction, the sale row locked by its conditional decrement."""
    prior = (await conn.execute(PRIOR_ANSWERS, {"users": [tap.user_id], "keys": [tap.key]})).one_or_none()
    if prior is not None:
        return BatchResult([_replay(prior, sale_id, tap)], 0, False, 0)
    taken = await ledger.take_from_sale(conn, sale_id, tap.quantity, for_taps=True)
    outcome = Outcome.RESERVED
    if taken is None:
        sale = (await conn.execute(SALE_FOR_UPDATE, {"id": sale_id})).one()
        snapshot = SaleSnapshot(
            SaleState(sale.state), sale.available, sale.per_user_limit, sale.starts_at, sale.ends_at, sale.now
        )
        outcome = decide_batch(snapshot, [tap], {tap.user_id: 0}).outcomes[0]
        if outcome is Outcome.RESERVED:  # the stock is short for this quantity, not gone
            outcome = Outcome.SOLD_OUT
    elif (
        tap.quantity > taken.per_user_limit
        or await ledger.add_held(conn, sale_id, {tap.user_id: tap.quantity}, taken.per_user_limit) != 1
    ):
        outcome = Outcome.LIMIT_EXCEEDED
    if outcome is not Outcome.RESERVED:
        if taken is not None:
            # give the units back in this same transaction: the net change is nothing
            await ledger.put_back(conn, {sale_id: tap.quantity}, allocate=False)
        await _record_answer(conn, sale_id, tap, outcome, None)
        return BatchResult([Answer(outcome)], 0, False, 0)
    row = (
        await conn.execute(
            INSERT_ORDERS,
            {
                "merchant": taken.merchant_id,
                "room": taken.room_id,
                "sale": sale_id,
                "sku": taken.sku_id,
                "price": taken.sale_price_minor,
                "currency": taken.currency,
                "ttl": ttl_s,
                "users": [tap.user_id],
                "keys": [tap.key],
                "qs": [tap.quantity],
            },
        )
    ).one()
    await _record_answer(conn, sale_id, tap, Outcome.RESERVED, row.id)
    return BatchResult(
        [Answer(Outcome.RESERVED, order_view(row))], taken.room_id, taken.available == 0, tap.quantity
    )


async def _record_answer(
    conn: AsyncConnection, sale_id: int, tap: Tap, outcome: Outcome, order_id: int | None
) -> None:
    """Store one tap's first answer, so a repeated key gets the same answer back."""
    await conn.execute(
        INSERT_ANSWERS,
        {
            "sale": sale_id,
            "users": [tap.user_id],
            "keys": [tap.key],
            "qs": [tap.quantity],
            "outcomes": [outcome.value],
            "orders": [order_id],
        },
    )


async def recent_orders(
    conn: AsyncConnection,
    *,
    limit: int,
    user_id: int | None = None,
    room_id: int | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Orders newest first, narrowed to a buyer, a room and a status where given."""
    conditions = [
        condition
        for condition, value in (
            ("o.user_id = :user", user_id),
            ("o.room_id = :room", room_id),
            ("o.status = CAST(:status AS order_status)", status),
        )
        if value is not None
    ]
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    rows = await conn.execute(
        text(
            f"SELECT {ORDER_COLUMNS} FROM orders o JOIN users u ON u.id = o.user_id {where}"
            "ORDER BY o.id DESC LIMIT :limit"
        ),
        {"user": user_id, "room": room_id, "status": status, "limit": limit},
    )
    return [order_view(row) for row in rows]


class OrderMetrics:
    """How the order paths perform: taps per decision transaction and its duration."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_taps = Histogram(
            "livecommerce_order_batch_taps",
            "Taps decided by one order transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "livecommerce_order_batch_seconds",
            "Duration of one order transaction, commit included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )


class OrderService:
    """Places and cancels orders for HTTP and WebSocket alike, and announces what changed."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        directory: SaleDirectory,
        events: CommerceEvents,
        *,
        ttl_s: int,
        batching: bool,
        window_s: float,
        metrics: OrderMetrics,
    ) -> None:
        self._engine = engine
        self.metrics = metrics
        self._sessions = sessions
        self.directory = directory
        self.events = events
        self.ttl_s = ttl_s
        self.batching = batching
        self.batcher = TapBatcher(self._decide_batch, window_s=window_s, open_lane=lambda: autocommit(engine))

    async def place(
        self,
        who: Principal,
        *,
        quantity: Any,
        key: Any,
        sale_id: int | None = None,
        sku_id: int | None = None,
        room_id: int | None = None,
    ) -> Answer:
        """Reserve units of a running sale (named by sale, or by SKU within a room)."""
        tap = tap_of(who, quantity, key)
        if sale_id is not None:
            ref = sale_in_room(await self.directory.get(sale_id), room_id)
        elif sku_id is not None and room_id is not None:
            ref = await self.directory.for_sku(room_id, sku_id)
        else:
            raise AppError("invalid", "name a sale_id, or a sku_id in a room")
        if self.batching:
            return await self.batcher.submit(ref.sale_id, tap)
        return await self._decide_one(ref.sale_id, tap)

    def place_soon(
        self,
        who: Principal,
        deliver: Callable[[Answer | BaseException], None],
        *,
        quantity: Any,
        key: Any,
        sale_id: int | None = None,
        sku_id: int | None = None,
        room_id: int | None = None,
    ) -> None:
        """`place`, answering through `deliver` (exactly once, with the Answer or the error).

        A tap naming its sale goes straight into the sale's batch (after the one shared lookup
        of the sale's facts, for the first taps a node sees), with no task or future of its own.
        """
        tap = tap_of(who, quantity, key)
        if sale_id is not None and self.batching:

            def enqueue(ref: SaleRef | BaseException) -> None:
                try:
                    if isinstance(ref, BaseException):
                        raise ref
                    self.batcher.enqueue(sale_in_room(ref, room_id).sale_id, tap, deliver)
                except Exception as exc:
                    deliver(exc)

            self.directory.get_soon(sale_id, enqueue)
            return

        async def place() -> None:
            try:
                answer: Answer | BaseException = await self.place(
                    who, quantity=quantity, key=key, sale_id=sale_id, sku_id=sku_id, room_id=room_id
                )
            except Exception as exc:
                answer = exc
            deliver(answer)

        self.events.spawn(place())

    async def _decide_batch(self, sale_id: int, taps: list[Tap], lane: AsyncConnection) -> list[Answer]:
        """One batch: optimistically on the sale's held autocommit connection (two round trips);
        if the sale keeps changing under it, under the sale's row lock."""
        started = time.perf_counter()
        result: BatchResult | None = None
        for _ in range(OPTIMISTIC_TRIES):
            try:
                result = await reserve_batch(lane, sale_id, taps, self.ttl_s, locked=False)
                break
            except (SaleChanged, IntegrityError):
                continue
        if result is None:
            result = await self._in_transaction(
                lambda conn: reserve_batch(conn, sale_id, taps, self.ttl_s, locked=True)
            )
        self._decided(sale_id, len(taps), result, started)
        return result.answers

    async def _decide_one(self, sale_id: int, tap: Tap) -> Answer:
        """The row-lock baseline: one tap, one transaction on a pooled connection."""
        started = time.perf_counter()
        result = await self._in_transaction(lambda conn: reserve_one(conn, sale_id, tap, self.ttl_s))
        self._decided(sale_id, 1, result, started)
        return result.answers[0]

    async def _in_transaction(self, work: Callable[[AsyncConnection], Awaitable[BatchResult]]) -> BatchResult:
        """Run `work` in a transaction; a key answered by another transaction meanwhile makes it
        run again (and replay that answer)."""
        for attempt in range(KEY_CONFLICT_RETRIES):
            try:
                async with self._engine.begin() as conn:
                    return await work(conn)
            except IntegrityError:
                if attempt == KEY_CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _decided(self, sale_id: int, taps: int, result: BatchResult, started: float) -> None:
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_taps.observe(taps)
        self._announce(sale_id, result)

    def _announce(self, sale_id: int, result: BatchResult) -> None:
        if result.taken:
            self.events.stock_changed(sale_id)
        if result.sold_out:
            self.events.spawn(self._announce_sale(sale_id, "sale.sold_out"))
        # a key repeated within the batch shares its first tap's answer: announce each order once
        reserved = {
            a.order["order_id"]: a.order for a in result.answers if a.order is not None and not a.replayed
        }
        self.events.orders(list(reserved.values()))

    async def _announce_sale(self, sale_id: int, type_: str) -> None:
        async with self._engine.connect() as conn:
            row = await read_sale(conn, sale_id)
        if row is not None:
            await self.events.publish(row.room_id, type_, sale_view(row))

    async def cancel(self, who: Principal, order_id: int) -> dict[str, Any]:
        """The buyer (or the merchant's operator) cancels an unpaid order; its units go back."""
        async with self._sessions.begin() as session:
            conn = await session.connection()
            order = (
                await conn.execute(
                    text("SELECT id, user_id, merchant_id, status FROM orders WHERE id = :id FOR UPDATE"),
                    {"id": order_id},
                )
            ).one_or_none()
            if order is None or (
                order.user_id != who.user_id and not may(who, "order.manage", order.merchant_id)
            ):
                raise AppError("not_found", "no such order")
            if order.status != "reserved":
                raise AppError("not_cancellable", f"the order is {order.status}")
            closed = await close_orders(conn, "cancelled", [order_id])
            if order.user_id != who.user_id:
                await audit(
                    session,
                    who,
                    "order.cancel",
                    merchant_id=order.merchant_id,
                    target_type="order",
                    target_id=order_id,
                )
        self.announce_closed(closed)
        return closed.orders[0]

    def announce_closed(self, closed: Closed) -> None:
        for sale_id in closed.returned.sale_ids:
            self.events.stock_changed(sale_id)
        for _room_id, sale_id in closed.returned.reopened:
            self.events.spawn(self._announce_sale(sale_id, "sale.live"))
        self.events.orders(closed.orders)

    async def own_orders(self, user_id: int, room_id: int | None = None) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            return await recent_orders(conn, user_id=user_id, room_id=room_id, limit=100)

    async def close(self) -> None:
        await self.batcher.close()


@dataclass(slots=True)
class Closed:
    orders: list[dict[str, Any]]
    returned: ledger.Returned


async def close_orders(conn: AsyncConnection, status: str, order_ids: list[int]) -> Closed:
    """Close reserved orders (cancelled or expired) and return their units, in one transaction."""
    rows = list(
        await conn.execute(
            text(
                "WITH c AS (UPDATE orders SET status = CAST(:status AS order_status), closed_at = now() "
                "WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'reserved' RETURNING *) "
                f"SELECT {ORDER_COLUMNS} FROM c AS o JOIN users u ON u.id = o.user_id"
            ),
            {"status": status, "ids": order_ids},
        )
    )
    returned = await ledger.return_units(conn, rows)
    return Closed([order_view(row) for row in rows], returned)
