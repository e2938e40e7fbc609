"""The mail outbox: a message about an order is queued in the transaction that changes the
order (so a crash neither loses nor repeats it), and each node's sender takes due messages
with `FOR UPDATE SKIP LOCKED`, sends them, and marks them sent. A failed try waits and is tried
again (the wait doubles each time, up to an hour); after MAIL_MAX_ATTEMPTS tries, or at once
when the server refuses the recipient for good, the message is given up (`failed`), the reason
kept in `last_error`. Paying or refunding never waits on the SMTP server.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.commerce import receipts
from livecommerce.commerce.smtp import SmtpConnection, Undeliverable, describe_failure
from livecommerce.config import Settings

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
LONGEST_WAIT_S = 3600.0

ORDER_FACTS = text(
    "SELECT o.id, o.quantity, o.unit_price_minor, o.amount_minor, o.currency, o.shipping, o.language, "
    "m.name AS merchant, pr.name AS product, sk.name AS variant "
    "FROM orders o JOIN merchants m ON m.id = o.merchant_id JOIN skus sk ON sk.id = o.sku_id "
    "JOIN products pr ON pr.id = sk.product_id WHERE o.id = :id"
)
QUEUE = text(
    "INSERT INTO mail_outbox (order_id, kind, recipient, message_id, message) "
    "VALUES (:order, :kind, :recipient, :message_id, :message) ON CONFLICT (order_id, kind) DO NOTHING"
)
TAKE_DUE = text(
    "SELECT id, kind, order_id, recipient, message, attempts FROM mail_outbox "
    "WHERE state = 'pending' AND next_attempt_at <= now() AND id <> ALL(:tried) ORDER BY next_attempt_at, id "
    "LIMIT 1 FOR UPDATE SKIP LOCKED"
)
MARK_SENT = text(
    "UPDATE mail_outbox SET state = 'sent', sent_at = now(), attempts = attempts + 1, last_error = '' "
    "WHERE id = :id"
)
MARK_WAITING = text(
    "UPDATE mail_outbox SET attempts = attempts + 1, last_error = :error, "
    "next_attempt_at = now() + make_interval(secs => :wait) WHERE id = :id"
)
MARK_FAILED = text(
    "UPDATE mail_outbox SET state = 'failed', attempts = attempts + 1, last_error = :error WHERE id = :id"
)


def retry_wait(attempts: int, first_wait: float) -> float:
    """Seconds to wait after the `attempts`-th failed try: doubling from `first_wait`, at most an hour."""
    return min(first_wait * 2 ** (attempts - 1), LONGEST_WAIT_S)


class MailMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "livecommerce_mail_sent", "Mails the SMTP server accepted", ["kind"], registry=registry
        )
        self.failed = Counter(
            "livecommerce_mail_failed",
            "Failed tries to send a mail (outcome: retry, or given_up for good)",
            ["kind", "outcome"],
            registry=registry,
        )


class MailOutbox:
    """Queues mail about orders inside their transactions, and sends what is due.

    Without SMTP_URL nothing is queued: no table fills up with mail no one will send."""

    def __init__(self, settings: Settings, engine: AsyncEngine, metrics: MailMetrics) -> None:
        self._settings = settings
        self._engine = engine
        self._metrics = metrics
        self._target = settings.smtp_target
        self.enabled = self._target is not None

    async def queue(
        self, conn: AsyncConnection, kind: str, order_id: int, *, refunded_minor: int = 0
    ) -> None:
        """Queue the message of `kind` about the order in the caller's transaction; once per
        order and kind, however often asked (a replayed payment confirmation queues nothing
        more). An order without the buyer's email address gets no mail."""
        if not self.enabled:
            return
        row = (await conn.execute(ORDER_FACTS, {"id": order_id})).one_or_none()
        if row is None or not row.shipping:
            return
        facts = receipts.OrderFacts(
            order_id=row.id,
            merchant=row.merchant,
            product=row.product,
            variant=row.variant,
            quantity=row.quantity,
            unit_price_minor=row.unit_price_minor,
            amount_minor=row.amount_minor,
            currency=row.currency,
            shipping=row.shipping,
            language=row.language,
        )
        try:
            letter = receipts.compose(
                kind,
                facts,
                mail_from=self._settings.mail_from,
                public_url=self._settings.base_url,
                now=datetime.now(UTC),
                refunded_minor=refunded_minor,
            )
        except ValueError:
            # an address the mail headers cannot carry: the order goes on without its mail
            log.warning(
                "no %s mail for order %s: its email address cannot be written in a header", kind, order_id
            )
            return
        if letter is None:
            return
        await conn.execute(
            QUEUE,
            {
                "order": order_id,
                "kind": kind,
                "recipient": letter.recipient,
                "message_id": letter.message_id,
                "message": letter.message,
            },
        )

    async def send_due(self) -> int:
        """Send every message that is due now, one transaction each (the row stays locked while
        it is sent, so no other sender takes it); returns how many the server accepted."""
        assert self._target is not None
        connection = SmtpConnection(self._target)
        tried: list[int] = []  # each message once per round, however short its wait
        accepted = 0
        try:
            while not _stopping() and (outcome := await self._send_one(connection, tried)) is not None:
                accepted += outcome
        finally:
            await connection.close()
        return accepted

    async def _send_one(self, connection: SmtpConnection, tried: list[int]) -> bool | None:
        """Take one due message and try it: True if the server accepted it, None if none is due."""
        async with self._engine.begin() as conn:
            row = (await conn.execute(TAKE_DUE, {"tried": tried})).one_or_none()
            if row is None:
                return None
            tried.append(row.id)
            try:
                await connection.send(self._settings.mail_from, row.recipient, row.message.encode("ascii"))
            except Undeliverable as exc:
                await self._give_up(conn, row, str(exc))
                return False
            except Exception as exc:
                if _stopping():
                    raise  # the node is shutting down: this try does not count
                if row.attempts + 1 >= self._settings.mail_max_attempts:
                    await self._give_up(conn, row, describe_failure(exc))
                else:
                    wait = retry_wait(row.attempts + 1, self._settings.mail_retry_seconds)
                    await conn.execute(
                        MARK_WAITING, {"id": row.id, "error": describe_failure(exc), "wait": wait}
                    )
                    self._metrics.failed.labels(row.kind, "retry").inc()
                    log.info(
                        "%s mail of order %s not sent (try %d, again in %.1f s): %s",
                        row.kind,
                        row.order_id,
                        row.attempts + 1,
                        wait,
                        describe_failure(exc),
                    )
                return False
            await conn.execute(MARK_SENT, {"id": row.id})
        self._metrics.sent.labels(row.kind).inc()
        return True

    async def _give_up(self, conn: AsyncConnection, row: Any, reason: str) -> None:
        await conn.execute(MARK_FAILED, {"id": row.id, "error": reason})
        self._metrics.failed.labels(row.kind, "given_up").inc()
        log.warning(
            "%s mail of order %s given up after %d tries: %s",
            row.kind,
            row.order_id,
            row.attempts + 1,
            reason,
        )

    async def run(self) -> None:
        """The node's sender: sends what is due, then looks again every POLL_INTERVAL_S."""
        if not self.enabled:
            return
        while True:
            try:
                await self.send_due()
            except Exception:
                if not _stopping():
                    log.exception("the mail sender failed; it goes on")
            if _stopping():
                raise asyncio.CancelledError
            await asyncio.sleep(POLL_INTERVAL_S)


def _stopping() -> bool:
    """Whether this task was asked to stop. The SMTP client or the database driver may turn the
    cancellation into an error of their own, which must not keep the sender going."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
