"""Reserving units for taps: the purchase is one short write per batch of taps.

Two paths decide taps, with the same answers:

- batched (default): `reserve_batch` reads the sale and every tap's state in one statement,
  decides every tap of the batch with the pure `batching.decide_batch`, and writes all orders,
  answers and per-viewer holdings and takes the units in one more statement, which rolls back
  unless the sale is still as read (optimistic; the sale row lock is the fallback);
- row lock (`ORDER_BATCHING=false`, the baseline): `reserve_one` runs one transaction per tap:
  conditional decrement, conditional per-viewer upsert, order row.

Each buyer's idempotency key is recorded with its first answer in `order_attempts`, in the same
statement or transaction as the reservation; a repeated key gets that answer back and reserves
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.commerce import ledger
from livecommerce.commerce.batching import Outcome, SaleSnapshot, Tap, decide_batch
from livecommerce.commerce.order_views import ORDER_COLUMNS, ORDER_JOINS, order_view
from livecommerce.db.models import SaleState
from livecommerce.errors import AppError

MESSAGES = {
    Outcome.SOLD_OUT: "sold out",
    Outcome.LIMIT_EXCEEDED: "that would exceed the per-viewer limit of this sale",
    Outcome.NOT_STARTED: "the sale has not started",
    Outcome.ENDED: "the sale has ended",
    Outcome.INSUFFICIENT_STOCK: "fewer units are left than you asked for; choose fewer",
    Outcome.KEY_REUSED: "this idempotency key was already used for another purchase; send a new key for each purchase",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """The one answer a tap gets; `order` is set when it reserved."""

    outcome: Outcome
    order: dict[str, Any] | None = None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "order": self.order}

    def error(self) -> AppError | None:
        """The typed error (sold_out, …) when the tap did not reserve; None when it did."""
        if self.outcome is Outcome.RESERVED:
            return None
        return AppError(self.outcome.value, MESSAGES[self.outcome])

    def accepted(self) -> dict[str, Any]:
        """The answer's data when it reserved; raises the typed error otherwise."""
        error = self.error()
        if error is not None:
            raise error
        return self.to_dict()


PRIOR_ANSWERS = text(
    "SELECT a.user_id AS tap_user, a.idempotency_key AS tap_key, a.outcome, a.sale_id AS attempt_sale, "
    f"a.sku_id AS attempt_sku, a.quantity AS attempt_quantity, {ORDER_COLUMNS} "
    "FROM order_attempts a "
    "JOIN unnest(CAST(:users AS bigint[]), CAST(:keys AS text[])) AS t(user_id, key) "
    "ON a.user_id = t.user_id AND a.idempotency_key = t.key "
    f"LEFT JOIN orders o ON o.id = a.order_id {ORDER_JOINS}"
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
    f"a.sale_id AS attempt_sale, a.sku_id AS attempt_sku, a.quantity AS attempt_quantity, {ORDER_COLUMNS} "
    "FROM flash_sales s "
    "CROSS JOIN unnest(CAST(:users AS bigint[]), CAST(:keys AS text[])) AS t(user_id, key) "
    "LEFT JOIN sale_buyers b ON b.sale_id = s.id AND b.user_id = t.user_id "
    "LEFT JOIN order_attempts a ON a.user_id = t.user_id AND a.idempotency_key = t.key "
    f"LEFT JOIN orders o ON o.id = a.order_id {ORDER_JOINS} WHERE s.id = :sale"
)
INSERT_ORDERS = text(
    "WITH o AS (INSERT INTO orders (merchant_id, room_id, sale_id, sku_id, user_id, kind, status, quantity, "
    "unit_price_minor, amount_minor, currency, idempotency_key, reserved_until) "
    "SELECT :merchant, :room, CAST(:sale AS bigint), :sku, t.user_id, 'sale', 'reserved', t.q, "
    "CAST(:price AS bigint), t.q * CAST(:price AS bigint), "
    ":currency, t.key, now() + make_interval(secs => CAST(:ttl AS double precision)) "
    "FROM unnest(CAST(:users AS bigint[]), CAST(:keys AS text[]), CAST(:qs AS int[])) AS t(user_id, key, q) "
    "RETURNING *) "
    f"SELECT o.idempotency_key AS tap_key, {ORDER_COLUMNS} FROM o {ORDER_JOINS}"
)
INSERT_ANSWERS = text(
    "INSERT INTO order_attempts (user_id, idempotency_key, sale_id, sku_id, room_id, quantity, outcome, order_id) "
    "SELECT t.user_id, t.key, CAST(:sale AS bigint), CAST(:sku AS bigint), CAST(:room AS bigint), t.q, t.outcome, t.order_id FROM unnest(CAST(:users AS bigint[]), "
    "CAST(:keys AS text[]), CAST(:qs AS int[]), CAST(:outcomes AS text[]), CAST(:orders AS bigint[])) "
    "AS t(user_id, key, q, outcome, order_id)"
)
BATCH_TAPS = (
    "unnest(CAST(:users AS bigint[]), CAST(:keys AS text[]), CAST(:qs AS int[]), CAST(:outcomes AS text[])) "
    "AS t(user_id, key, q, outcome)"
)
# Locks are taken in the order every path takes them: the sale row first (`take` is read first),
# then the buyers' holdings and the answers, each in key order (`BatchPlan.in_lock_order`).
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
    f"{ORDER_COLUMNS} FROM (SELECT livecommerce_require((SELECT count(*) FROM take) = :take_rows "
    "AND (SELECT count(*) FROM held) = :held_rows AND (SELECT count(*) FROM answers) = :answer_rows, "
    "'the sale changed while the batch was decided') AS ok, (SELECT available FROM take) AS available_after) c "
    f"LEFT JOIN ins o ON true {ORDER_JOINS}"
)


def replay(row: Row[Any], tap: Tap, *, sale_id: int | None = None, sku_id: int | None = None) -> Answer:
    """The first answer of a key sent again; KEY_REUSED if it now asks for another purchase
    (another offer, a flash sale's or a SKU's at list price, or another quantity)."""
    offer = (row.attempt_sale, row.attempt_sku, row.attempt_quantity)
    if offer != (sale_id, sku_id, tap.quantity):
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


CONTENTION_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure: what `livecommerce_require` raises
        "40P01",  # deadlock_detected: PostgreSQL chose this statement to break a cycle of waits
    }
)


def contended(exc: DBAPIError) -> bool:
    """True when the statement lost to concurrent writers and deciding again will succeed."""
    return getattr(exc.orig, "sqlstate", None) in CONTENTION_SQLSTATES


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
    firsts, buyers = plan.in_lock_order(fresh)
    sold_out = False
    if firsts:
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
            if contended(exc):
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
        replay(prior[(t.user_id, t.key)], t, sale_id=sale_id)
        if (t.user_id, t.key) in prior
        else next(decided)
        for t in taps
    ]
    return BatchResult(answers, sale.sale_room, sold_out, plan.taken)


async def reserve_one(conn: AsyncConnection, sale_id: int, tap: Tap, ttl_s: int) -> BatchResult:
    """The baseline: one tap, one transaction, the sale row locked by its conditional decrement."""
    prior = (await conn.execute(PRIOR_ANSWERS, {"users": [tap.user_id], "keys": [tap.key]})).one_or_none()
    if prior is not None:
        return BatchResult([replay(prior, tap, sale_id=sale_id)], 0, False, 0)
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
        await record_answer(conn, tap, outcome, None, sale_id=sale_id)
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
    await record_answer(conn, tap, Outcome.RESERVED, row.id, sale_id=sale_id)
    return BatchResult(
        [Answer(Outcome.RESERVED, order_view(row))], taken.room_id, taken.available == 0, tap.quantity
    )


async def record_answer(
    conn: AsyncConnection,
    tap: Tap,
    outcome: Outcome,
    order_id: int | None,
    *,
    sale_id: int | None = None,
    sku_id: int | None = None,
    room_id: int | None = None,
) -> None:
    """Store one tap's first answer to the offer it named (a sale, or a SKU at list price in a
    room), so a repeated key gets it back."""
    await conn.execute(
        INSERT_ANSWERS,
        {
            "sale": sale_id,
            "sku": sku_id,
            "room": room_id,
            "users": [tap.user_id],
            "keys": [tap.key],
            "qs": [tap.quantity],
            "outcomes": [outcome.value],
            "orders": [order_id],
        },
    )
