"""Mail to buyers through a real SMTP server on loopback: the receipt when an order is paid
(test mode and Stripe's webhook), the refund confirmation, the outbox when the server is down
or refuses, and senders racing on one outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import aiohttp
import asyncpg
import pytest
from commerce_client import BUYER_DETAILS, call, dsn_of, reserve_in_sale
from helpers import LiveServer, start_server, wait_for
from mail_catcher import MailCatcher
from prometheus_client import CollectorRegistry
from stripe_fake import WEBHOOK_SECRET, FakeStripe

from livecommerce.appkeys import ENGINE, METRICS, SETTINGS
from livecommerce.commerce.mail_outbox import MailMetrics, MailOutbox
from livecommerce.config import Settings
from livecommerce.db.embedded import free_port

PUBLIC_URL = "https://shop.example.com"
MAIL_FROM = "orders@shop.example.com"
BUYER = {**BUYER_DETAILS, "name": "Ann Lee", "email": "ann@example.com", "country": "GB"}


@pytest.fixture
async def catcher() -> AsyncIterator[MailCatcher]:
    """A real SMTP server on a free loopback port, not started: each test starts it when it wants."""
    catcher = MailCatcher(free_port())
    yield catcher
    catcher.stop()


def with_mail(settings: Settings, catcher: MailCatcher, **more) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": catcher.url,
            "mail_from": MAIL_FROM,
            "public_url": PUBLIC_URL,
            "mail_retry_seconds": 0.2,
            **more,
        }
    )


@pytest.fixture
async def mailing(settings: Settings, catcher: MailCatcher) -> AsyncIterator[LiveServer]:
    """The real server in test mode, mailing through the catcher."""
    live = await start_server(with_mail(settings, catcher))
    yield live
    await live.runner.cleanup()


async def reserve(
    http, server: LiveServer, world, count: int = 1, *, quantity: int = 2
) -> list[tuple[dict, str]]:
    """`count` buyers each reserve `quantity` units at 25.00 and give their details: (order, token)."""
    _, reserved = await reserve_in_sale(
        http,
        server,
        world,
        allocated=count * quantity,
        quantity=quantity,
        price=2500,
        buyers=count,
        per_user_limit=quantity,
    )
    for order, token in reserved:
        status, answer = await call(
            http, "PUT", f"{server.url}/api/orders/{order['order_id']}/shipping", token, {"details": BUYER}
        )
        assert status == 200, answer
    return reserved


async def pay_in_test_mode(http, server: LiveServer, order_id: int, token: str) -> dict:
    status, answer = await call(http, "POST", f"{server.url}/api/orders/{order_id}/pay", token)
    assert status == 200 and answer["mode"] == "test", answer
    status, answer = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", token)
    assert status == 200, answer
    return answer["order"]


async def outbox(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetch("SELECT * FROM mail_outbox ORDER BY id")
    finally:
        await conn.close()


def sample(server: LiveServer, name: str, **labels: str) -> float:
    return server.app[METRICS].get_sample_value(name, labels) or 0.0


async def test_a_paid_order_mails_one_receipt_and_a_refund_one_confirmation(mailing, catcher, database_url):
    catcher.start()
    world = await mailing.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        [(order, token)] = await reserve(http, mailing, world)
        paid = await pay_in_test_mode(http, mailing, order["order_id"], token)
        assert paid["status"] == "paid"
        # the page confirms again (a double click, a retry): still one receipt
        status, answer = await call(
            http, "POST", f"{mailing.url}/api/orders/{order['order_id']}/test-confirm", token
        )
        assert status == 200 and answer["order"]["status"] == "paid", answer
        await wait_for(lambda: catcher.caught, timeout=20, message="the receipt")
        await asyncio.sleep(1.5)  # a second receipt would come on the sender's next round
        [receipt] = catcher.caught
        number = order["order_id"]
        assert (receipt.sender, receipt.recipients) == (MAIL_FROM, ["ann@example.com"])
        headers = receipt.message
        assert headers["From"] == f"Shop <{MAIL_FROM}>"
        assert headers["To"] == "Ann Lee <ann@example.com>"
        assert headers["Subject"] == f"Shop: your order #{number} is paid"
        assert parsedate_to_datetime(headers["Date"]).tzinfo is not None
        assert headers["Message-ID"].endswith(f".receipt.{number}@shop.example.com>")
        body = receipt.text()
        assert f"Order #{number}" in body
        assert "Green tea · 250 g × 2 at 25.00 USD: 50.00 USD" in body
        assert "Total: 50.00 USD" in body
        assert "Ann Lee\n12 Wenyi Road\n310012 Hangzhou\nGB" in body
        assert f"{PUBLIC_URL}/orders" in body
        assert f'<a href="{PUBLIC_URL}/orders">' in receipt.html()
        [row] = await outbox(database_url)
        assert (row["kind"], row["state"], row["attempts"], row["message_id"]) == (
            "receipt",
            "sent",
            1,
            headers["Message-ID"].strip(),  # a long header comes folded
        )
        assert sample(mailing, "livecommerce_mail_sent_total", kind="receipt") == 1

        status, answer = await call(
            http,
            "POST",
            f"{mailing.url}/api/orders/{number}/refund",
            world.tokens["operator"],
            {"reason": "out of stock after all"},
        )
        assert status == 200, answer
        await wait_for(lambda: len(catcher.caught) == 2, timeout=20, message="the refund confirmation")
        refund = catcher.caught[1]
        assert refund.message["Subject"] == f"Shop: refund for your order #{number}"
        assert f"We refunded 50.00 USD for your order #{number} from Shop." in refund.text()
        assert refund.message["Message-ID"] != headers["Message-ID"]


async def test_a_buyer_reading_chinese_gets_the_receipt_in_chinese(mailing, catcher):
    catcher.start()
    world = await mailing.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        [(order, token)] = await reserve(http, mailing, world, quantity=1)
        status, answer = await call(
            http,
            "PUT",
            f"{mailing.url}/api/orders/{order['order_id']}/shipping",
            token,
            {"details": BUYER, "language": "zh-Hans-CN"},
        )
        assert status == 200, answer
        await pay_in_test_mode(http, mailing, order["order_id"], token)
    await wait_for(lambda: catcher.caught, timeout=20, message="the receipt")
    [receipt] = catcher.caught
    assert receipt.message["Subject"] == f"Shop：订单 #{order['order_id']} 已付款"
    assert receipt.message["Content-Language"] == "zh-CN"
    assert "合计：25.00 USD" in receipt.text()


async def test_an_order_without_an_email_address_gets_no_mail(mailing, catcher, database_url):
    catcher.start()
    world = await mailing.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        [(order, token)] = await reserve(http, mailing, world, quantity=1)
        details = {key: value for key, value in BUYER.items() if key != "email"}
        await call(
            http, "PUT", f"{mailing.url}/api/orders/{order['order_id']}/shipping", token, {"details": details}
        )
        assert (await pay_in_test_mode(http, mailing, order["order_id"], token))["status"] == "paid"
    assert await outbox(database_url) == []


async def test_smtp_down_at_payment_the_order_is_paid_at_once_and_the_receipt_follows(
    mailing, catcher, database_url
):
    world = await mailing.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        [(order, token)] = await reserve(http, mailing, world)
        paid = await asyncio.wait_for(pay_in_test_mode(http, mailing, order["order_id"], token), timeout=10)
        assert paid["status"] == "paid"

    async def tried_and_waiting() -> bool:
        rows = await outbox(database_url)
        return bool(rows) and rows[0]["state"] == "pending" and rows[0]["attempts"] >= 1

    await wait_for(tried_and_waiting, timeout=20, message="a failed try")
    [row] = await outbox(database_url)
    assert "Connect" in row["last_error"] or "refused" in row["last_error"].lower(), row["last_error"]
    assert sample(mailing, "livecommerce_mail_failed_total", kind="receipt", outcome="retry") >= 1
    catcher.start()
    await wait_for(lambda: catcher.caught, timeout=30, message="the receipt once the server is up")
    await asyncio.sleep(1.5)
    assert len(catcher.caught) == 1
    [row] = await outbox(database_url)
    assert row["state"] == "sent" and row["last_error"] == ""


async def test_a_refusing_server_gets_the_mail_again_and_a_bounded_number_of_tries(
    settings, catcher, database_url
):
    catcher.start()
    catcher.refuse_with = "451 4.3.0 try again later"
    server = await start_server(with_mail(settings, catcher, mail_max_attempts=3))
    try:
        world = await server.seed(stock=10)
        async with aiohttp.ClientSession() as http:
            [(first, first_token), (second, second_token)] = await reserve(http, server, world, 2)
            await pay_in_test_mode(http, server, first["order_id"], first_token)

            async def gave_up() -> bool:
                rows = await outbox(database_url)
                return bool(rows) and rows[0]["state"] == "failed"

            await wait_for(gave_up, timeout=30, message="the mail given up")
            [row] = await outbox(database_url)
            assert row["attempts"] == 3 and row["last_error"] == "451 4.3.0 try again later"
            assert sample(server, "livecommerce_mail_failed_total", kind="receipt", outcome="given_up") == 1

            await pay_in_test_mode(http, server, second["order_id"], second_token)

            async def tried_once() -> bool:
                return (await outbox(database_url))[-1]["attempts"] >= 1

            await wait_for(tried_once, timeout=20, message="the second receipt tried")
            catcher.refuse_with = None
            await wait_for(lambda: catcher.caught, timeout=30, message="the second receipt")
        assert [caught.message["Subject"] for caught in catcher.caught] == [
            f"Shop: your order #{second['order_id']} is paid"
        ]
    finally:
        await server.runner.cleanup()


async def test_a_replayed_stripe_confirmation_mails_one_receipt(settings, catcher, database_url):
    catcher.start()
    stripe = await FakeStripe(WEBHOOK_SECRET).start()
    shop = await start_server(
        with_mail(
            settings,
            catcher,
            stripe_secret_key="sk_test_local",
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_publishable_key="pk_test_local",
            stripe_api_base=stripe.url,
        )
    )
    try:
        world = await shop.seed(stock=10)
        async with aiohttp.ClientSession() as http:
            [(order, token)] = await reserve(http, shop, world)
            status, started = await call(
                http, "POST", f"{shop.url}/api/orders/{order['order_id']}/pay", token
            )
            assert status == 200 and started["mode"] == "stripe", started
            url = f"{shop.url}/api/payments/stripe/webhook"
            succeeded = stripe.event("payment_intent.succeeded", started["payment_intent"])
            again = stripe.event("payment_intent.succeeded", started["payment_intent"])  # another event id
            replies = await asyncio.gather(
                stripe.deliver(http, url, succeeded),
                stripe.deliver(http, url, succeeded),
                stripe.deliver(http, url, again),
            )
            assert {status for status, _ in replies} == {200}, replies
            await stripe.deliver(http, url, succeeded)
        await wait_for(lambda: catcher.caught, timeout=20, message="the receipt")
        await asyncio.sleep(1.5)
        assert len(catcher.caught) == 1
        assert [(row["kind"], row["state"]) for row in await outbox(database_url)] == [("receipt", "sent")]
    finally:
        await shop.runner.cleanup()
        await stripe.stop()


async def test_senders_racing_on_one_outbox_send_each_mail_once(settings, catcher, database_url):
    catcher.answer_delay = 0.02  # every send takes a while, so the senders overlap
    server = await start_server(with_mail(settings, catcher))
    try:
        world = await server.seed(stock=100)
        async with aiohttp.ClientSession() as http:
            orders = await reserve(http, server, world, 16, quantity=1)
            # the SMTP server is down until every receipt is queued
            await asyncio.gather(*(pay_in_test_mode(http, server, o["order_id"], t) for o, t in orders))
        racers = [
            MailOutbox(server.app[SETTINGS], server.app[ENGINE], MailMetrics(CollectorRegistry()))
            for _ in range(3)
        ]
        catcher.start()
        conn = await asyncpg.connect(dsn_of(database_url))
        try:  # every receipt due now: the server's own sender and three more race for them
            await conn.execute("UPDATE mail_outbox SET next_attempt_at = now()")
        finally:
            await conn.close()
        sent = await asyncio.gather(*(racer.send_due() for racer in racers for _ in range(2)))
        await wait_for(lambda: len(catcher.caught) >= 16, timeout=30, message="every receipt")
        await asyncio.sleep(1.5)
    finally:
        await server.runner.cleanup()
    subjects = [caught.message["Subject"] for caught in catcher.caught]
    assert sorted(subjects) == sorted(f"Shop: your order #{o['order_id']} is paid" for o, _ in orders)
    rows = await outbox(database_url)
    assert len(rows) == 16 and {row["state"] for row in rows} == {"sent"}
    assert sum(sent) + sample(server, "livecommerce_mail_sent_total", kind="receipt") == 16


async def test_a_server_shutting_down_while_a_mail_is_on_its_way_stops_at_once(
    settings, catcher, database_url
):
    catcher.start()
    catcher.answer_delay = 5.0
    server = await start_server(with_mail(settings, catcher))
    stopped = False
    try:
        world = await server.seed(stock=10)
        async with aiohttp.ClientSession() as http:
            [(order, token)] = await reserve(http, server, world)
            await pay_in_test_mode(http, server, order["order_id"], token)
        await wait_for(lambda: catcher.data_started, timeout=20, message="the receipt on its way")
        await asyncio.wait_for(server.runner.cleanup(), timeout=10)
        stopped = True
    finally:
        if not stopped:
            await server.runner.cleanup()
    # the try was cut short by the shutdown: it does not count against the mail
    [row] = await outbox(database_url)
    assert (row["state"], row["attempts"]) == ("pending", 0)
