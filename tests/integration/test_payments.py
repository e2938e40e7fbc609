"""Payments: Stripe PaymentIntents and signed webhooks against a local Stripe, and the test mode."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import orjson
from commerce_client import call, dsn_of, guests, ledger, new_key, reserve_in_sale, start_paying, start_sale
from helpers import wait_for
from room_client import RoomClient
from stripe_fake import WEBHOOK_SECRET, sign


async def _status(database_url: str, order_id: int) -> str:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetchval("SELECT status::text FROM orders WHERE id = $1", order_id)
    finally:
        await conn.close()


async def _expire(database_url: str, order_id: int) -> None:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        await conn.execute(
            "UPDATE orders SET reserved_until = now() - interval '1 second' WHERE id = $1", order_id
        )
    finally:
        await conn.close()


async def test_payment_intent_uses_the_order_amount_and_an_idempotency_key(shop, stripe, database_url):
    world = await shop.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        sale, [(order, token)] = await reserve_in_sale(http, shop, world, quantity=2, price=2500)
        status, started = await start_paying(http, shop.url, order["order_id"], token)
        assert status == 200, started
        assert started["mode"] == "stripe" and started["publishable_key"] == "pk_test_local"
        assert started["client_secret"].startswith(started["payment_intent"])
        status, again = await start_paying(http, shop.url, order["order_id"], token)
        assert again["payment_intent"] == started["payment_intent"]
        [(_, _, key, params), (_, _, key2, _)] = stripe.requests
        assert key == key2 == f"order-{order['order_id']}-intent"
        assert params["amount"] == "5000" and params["currency"] == "usd"
        assert params["metadata"] == {"order_id": str(order["order_id"])}
        [(_, stranger)] = await guests(http, shop.url, 1)
        status, answer = await call(http, "POST", f"{shop.url}/api/orders/{order['order_id']}/pay", stranger)
        assert answer["error"]["code"] == "not_found"

        url = f"{shop.url}/api/payments/stripe/webhook"
        succeeded = stripe.event("payment_intent.succeeded", started["payment_intent"])
        assert await stripe.deliver(http, url, succeeded) == (200, {"received": True})
        assert await stripe.deliver(http, url, succeeded) == (200, {"received": True, "duplicate": True})
    assert await _status(database_url, order["order_id"]) == "paid"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert (book.on_hand, book.sku_reserved, book.taken, book.available) == (8, 3, 2, 3)


async def test_forged_webhooks_are_refused_and_write_nothing(shop, stripe, database_url):
    world = await shop.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        _, [(order, token)] = await reserve_in_sale(http, shop, world)
        _, started = await start_paying(http, shop.url, order["order_id"], token)
        url = f"{shop.url}/api/payments/stripe/webhook"
        event = stripe.event("payment_intent.succeeded", started["payment_intent"])
        body = orjson.dumps(event)
        tampered = body.replace(b'"amount_received":2500', b'"amount_received":1')
        for kwargs in (
            {"secret": "whsec_wrong"},
            {"signature": sign(body, WEBHOOK_SECRET, timestamp=1_000_000_000)},  # replayed long after
            {"signature": ""},
            {"payload": tampered, "signature": sign(body, WEBHOOK_SECRET)},
        ):
            status, answer = await stripe.deliver(http, url, event, **kwargs)
            assert (status, answer["error"]["code"]) == (400, "invalid_signature"), kwargs
        status, answer = await stripe.deliver(http, url, event, payload=b"not json")
        assert status == 400
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM payment_events") == 0
    finally:
        await conn.close()
    assert await _status(database_url, order["order_id"]) == "reserved"


async def test_webhooks_in_any_order_settle_the_same_way(shop, stripe, database_url):
    world = await shop.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        sale, [(first, t1), (second, t2)] = await reserve_in_sale(http, shop, world, buyers=2)
        url = f"{shop.url}/api/payments/stripe/webhook"
        _, p1 = await start_paying(http, shop.url, first["order_id"], t1)
        _, p2 = await start_paying(http, shop.url, second["order_id"], t2)
        # first order: the refund arrives before the success it refunds
        await stripe.deliver(http, url, stripe.event("charge.refunded", p1["payment_intent"]))
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p1["payment_intent"]))
        # second order: a failed attempt's event arrives after the success
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p2["payment_intent"]))
        await stripe.deliver(http, url, stripe.event("payment_intent.payment_failed", p2["payment_intent"]))
        # an event about a PaymentIntent this server never made is acknowledged and ignored
        stripe.intents["pi_elsewhere"] = {**stripe.intents[p2["payment_intent"]], "id": "pi_elsewhere"}
        assert (await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", "pi_elsewhere")))[
            0
        ] == 200
    assert await _status(database_url, first["order_id"]) == "refunded"
    assert await _status(database_url, second["order_id"]) == "paid"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    # the refunded order was never paid: its unit went back to the sale; the paid one left stock
    assert (book.available, book.on_hand, book.sku_reserved) == (4, 9, 4)


async def test_late_success_takes_the_units_again_or_is_refunded_automatically(shop, stripe, database_url):
    world = await shop.seed(stock=2)
    async with aiohttp.ClientSession() as http:
        sale, [(kept, t1), (lost, t2)] = await reserve_in_sale(http, shop, world, allocated=2, buyers=2)
        url = f"{shop.url}/api/payments/stripe/webhook"
        _, p1 = await start_paying(http, shop.url, kept["order_id"], t1)
        _, p2 = await start_paying(http, shop.url, lost["order_id"], t2)
        for order in (kept, lost):
            await _expire(database_url, order["order_id"])
        await wait_for(lambda: _both_expired(database_url, kept, lost), message="both reservations to expire")
        # someone else, watching the room, buys one of the two returned units
        [(_, t3)] = await guests(http, shop.url, 1)
        watcher = await RoomClient.connect(shop.room_ws(world.room_id, t3))
        try:
            await watcher.event("snapshot")
            status, _ = await call(
                http,
                "POST",
                f"{shop.url}/api/orders",
                t3,
                {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
            )
            assert status == 200
            await watcher.event("stock", sale_id=sale["sale_id"], available=1)  # the purchase above
            await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p1["payment_intent"]))
            assert await _status(database_url, kept["order_id"]) == "paid"  # a unit was still there
            # the room is told that the late payment took the last unit
            stock = await watcher.event("stock", sale_id=sale["sale_id"], available=0, state="sold_out")
            assert stock["data"]["version"] == await _stock_version(database_url, sale["sale_id"])
        finally:
            await watcher.close()
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p2["payment_intent"]))
        assert await _status(database_url, lost["order_id"]) == "refunded"  # none left: refunded
        [refund] = stripe.refunds
        assert refund["payment_intent"] == p2["payment_intent"]
        assert stripe.requests[-1][2] is not None  # the refund call carried an idempotency key
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.available == 0 and book.taken + book.available == book.allocated


async def _stock_version(database_url: str, sale_id: int) -> int:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetchval("SELECT stock_version FROM flash_sales WHERE id = $1", sale_id)
    finally:
        await conn.close()


async def _both_expired(database_url, *orders) -> bool:
    return all([await _status(database_url, o["order_id"]) == "expired" for o in orders])


async def test_operator_refund_calls_stripe_once_and_is_audited(shop, stripe, database_url):
    world = await shop.seed(stock=5)
    async with aiohttp.ClientSession() as http:
        _, [(order, token)] = await reserve_in_sale(http, shop, world)
        order_id = order["order_id"]
        status, answer = await call(
            http,
            "POST",
            f"{shop.url}/api/orders/{order_id}/refund",
            world.tokens["operator"],
            {"reason": "changed mind"},
        )
        assert answer["error"]["code"] == "not_refundable"
        _, started = await start_paying(http, shop.url, order_id, token)
        url = f"{shop.url}/api/payments/stripe/webhook"
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", started["payment_intent"]))
        status, _ = await call(
            http, "POST", f"{shop.url}/api/orders/{order_id}/refund", world.tokens["anchor"], {}
        )
        assert status == 403
        stripe.fail_next = 3  # more failures than stripe-python retries
        status, answer = await call(
            http,
            "POST",
            f"{shop.url}/api/orders/{order_id}/refund",
            world.tokens["operator"],
            {"reason": "damaged"},
        )
        assert (status, answer["error"]["code"]) == (502, "payment_provider_error")
        assert await _status(database_url, order_id) == "paid"
        status, answer = await call(
            http,
            "POST",
            f"{shop.url}/api/orders/{order_id}/refund",
            world.tokens["operator"],
            {"reason": "damaged"},
        )
        assert status == 200 and answer["order"]["status"] == "refunded"
        assert len(stripe.refunds) == 1
        assert {key for method, path, key, _ in stripe.requests if path == "/v1/refunds"} == {
            f"order-{order_id}-refund"
        }
        status, _ = await stripe.deliver(
            http, url, stripe.event("charge.refunded", started["payment_intent"])
        )
        assert status == 200
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        audit = await conn.fetchrow("SELECT action, details FROM audit_log WHERE action = 'order.refund'")
        refunded = await conn.fetchval("SELECT amount_refunded_minor FROM payments")
    finally:
        await conn.close()
    assert orjson.loads(audit["details"])["reason"] == "damaged" and refunded == 2500
    assert await _status(database_url, order_id) == "refunded"


async def test_test_mode_confirms_locally_and_is_labelled(server, database_url):
    world = await server.seed(stock=5)
    async with aiohttp.ClientSession() as http:
        sale, [(order, token), (other, other_token)] = await reserve_in_sale(http, server, world, buyers=2)
        status, started = await start_paying(http, server.url, order["order_id"], token)
        assert started["mode"] == "test" and "TEST MODE" in started["notice"]
        status, answer = await call(
            http, "POST", f"{server.url}/api/orders/{order['order_id']}/test-confirm", other_token
        )
        assert answer["error"]["code"] == "not_found"
        status, answer = await call(
            http, "POST", f"{server.url}/api/orders/{order['order_id']}/test-confirm", token
        )
        assert status == 200 and answer["order"]["status"] == "paid" and answer["mode"] == "test"
        status, answer = await call(http, "POST", f"{server.url}/api/payments/stripe/webhook", None, {})
        assert status == 404
        await _expire(database_url, other["order_id"])
        await wait_for(lambda: _both_expired(database_url, other), message="the reservation to expire")
        status, answer = await call(
            http, "POST", f"{server.url}/api/orders/{other['order_id']}/pay", other_token
        )
        assert answer["error"]["code"] == "not_payable"
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders/{order['order_id']}/refund",
            world.tokens["operator"],
            {"reason": "test"},
        )
        assert status == 200 and answer["order"]["status"] == "refunded"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert (book.on_hand, book.taken, book.available) == (4, 1, 4)


async def test_signed_but_malformed_webhooks_are_refused_once_without_a_traceback(
    shop, stripe, database_url, caplog
):
    world = await shop.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        _, [(order, token)] = await reserve_in_sale(http, shop, world)
        _, started = await start_paying(http, shop.url, order["order_id"], token)
        url = f"{shop.url}/api/payments/stripe/webhook"
        good = stripe.event("payment_intent.succeeded", started["payment_intent"])
        intent = good["data"]["object"]
        malformed = [
            {k: v for k, v in good.items() if k != "id"},
            {**good, "type": 5},
            {**good, "data": "object"},
            {**good, "data": {"object": [intent]}},
            {**good, "data": {"object": {**intent, "amount_received": "2500"}}},
            {**good, "data": {"object": {**intent, "amount_received": 2**63}}},
            {**good, "data": {"object": {**intent, "id": {"nested": True}}}},
            {**good, "id": "evt_\x00"},
            {
                **good,
                "type": "charge.refunded",
                "data": {"object": {"payment_intent": ["pi"], "amount_refunded": 1}},
            },
            [good],
        ]
        for event in malformed:
            status, answer = await stripe.deliver(http, url, good, payload=orjson.dumps(event))
            assert status == 400 and answer["error"]["code"] == "invalid", (event, status, answer)
        not_json = b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": NaN}}'
        status, answer = await stripe.deliver(http, url, good, payload=not_json)
        assert status == 400 and answer["error"]["code"] == "invalid_json"
        other = {"id": "evt_other", "type": "customer.created", "data": {"object": {"currency": None}}}
        assert await stripe.deliver(http, url, other) == (200, {"received": True})
        assert await stripe.deliver(http, url, good) == (200, {"received": True})
    assert await _status(database_url, order["order_id"]) == "paid"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def _concurrent_refunds(http, server, database_url, world, order_id: int, count: int = 12) -> None:
    """`count` refunds of one paid order at once: one is made (and audited), the rest are refused."""
    answers = await asyncio.gather(
        *(
            call(
                http,
                "POST",
                f"{server.url}/api/orders/{order_id}/refund",
                world.tokens["operator"],
                {"reason": f"try {i}"},
            )
            for i in range(count)
        )
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * (count - 1), answers
    assert {body["error"]["code"] for status, body in answers if status == 409} == {"not_refundable"}
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'order.refund' AND target_id = $1", str(order_id)
        )
    finally:
        await conn.close()
    assert audited == 1
    assert await _status(database_url, order_id) == "refunded"


async def test_concurrent_refunds_of_one_order_refund_it_once(server, database_url):
    world = await server.seed(stock=5)
    async with aiohttp.ClientSession() as http:
        _, [(order, token)] = await reserve_in_sale(http, server, world)
        await start_paying(http, server.url, order["order_id"], token)
        status, _ = await call(
            http, "POST", f"{server.url}/api/orders/{order['order_id']}/test-confirm", token
        )
        assert status == 200
        await _concurrent_refunds(http, server, database_url, world, order["order_id"])


async def test_concurrent_stripe_refunds_of_one_order_refund_it_once(shop, stripe, database_url):
    world = await shop.seed(stock=5)
    async with aiohttp.ClientSession() as http:
        _, [(order, token)] = await reserve_in_sale(http, shop, world)
        _, started = await start_paying(http, shop.url, order["order_id"], token)
        await stripe.deliver(
            http,
            f"{shop.url}/api/payments/stripe/webhook",
            stripe.event("payment_intent.succeeded", started["payment_intent"]),
        )
        assert await _status(database_url, order["order_id"]) == "paid"
        await _concurrent_refunds(http, shop, database_url, world, order["order_id"])
    assert len(stripe.refunds) == 1


async def _buy_limit_twice_around_a_cancel(http, server, world):
    """Reserve the limit (5) and start paying, cancel, reserve the limit again and start paying:
    the sale, the buyer's token and the two orders with their payments."""
    sale = await start_sale(
        http,
        server.url,
        world.tokens["operator"],
        room_id=world.room_id,
        sku_id=world.sku_id,
        allocated=10,
        per_user_limit=5,
        price=2500,
    )
    [(_, token)] = await guests(http, server.url, 1)
    orders = []
    for attempt in range(2):
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            token,
            {"sale_id": sale["sale_id"], "quantity": 5, "idempotency_key": new_key()},
        )
        assert status == 200, answer
        order_id = answer["order"]["order_id"]
        status, payment = await start_paying(http, server.url, order_id, token)
        assert status == 200, payment
        orders.append((order_id, payment))
        if attempt == 0:
            status, _ = await call(http, "POST", f"{server.url}/api/orders/{order_id}/cancel", token)
            assert status == 200
    return sale, token, orders


async def _assert_the_limit_held(database_url, sale_id: int, late_order_id: int) -> None:
    assert await _status(database_url, late_order_id) == "refunded"
    book = await ledger(dsn_of(database_url), sale_id)
    assert list(book.per_user.values()) == [5] and list(book.ledger_per_user.values()) == [5]
    assert (book.taken, book.available, book.on_hand) == (5, 5, 15)


async def test_a_late_stripe_payment_for_a_cancelled_order_never_exceeds_the_per_buyer_limit(
    shop, stripe, database_url
):
    world = await shop.seed(stock=20)
    url = f"{shop.url}/api/payments/stripe/webhook"
    async with aiohttp.ClientSession() as http:
        sale, _, [(first, p1), (second, p2)] = await _buy_limit_twice_around_a_cancel(http, shop, world)
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p2["payment_intent"]))
        assert await _status(database_url, second) == "paid"
        await stripe.deliver(http, url, stripe.event("payment_intent.succeeded", p1["payment_intent"]))
        await wait_for(lambda: _refunded(database_url, first), message="the late payment refunded")
        [refund] = stripe.refunds
        assert refund["payment_intent"] == p1["payment_intent"]
    await _assert_the_limit_held(database_url, sale["sale_id"], first)


async def test_a_late_test_mode_payment_for_a_cancelled_order_is_refused_within_the_limit(
    server, database_url
):
    world = await server.seed(stock=20)
    async with aiohttp.ClientSession() as http:
        sale, token, [(first, _), (second, _)] = await _buy_limit_twice_around_a_cancel(http, server, world)
        status, answer = await call(http, "POST", f"{server.url}/api/orders/{second}/test-confirm", token)
        assert status == 200 and answer["order"]["status"] == "paid"
        status, answer = await call(http, "POST", f"{server.url}/api/orders/{first}/test-confirm", token)
        assert answer["error"]["code"] == "not_payable"
    await _assert_the_limit_held(database_url, sale["sale_id"], first)


async def _refunded(database_url: str, order_id: int) -> bool:
    return await _status(database_url, order_id) == "refunded"


async def test_an_order_without_the_buyers_details_is_not_paid_and_nothing_changes(
    shop, stripe, database_url
):
    world = await shop.seed(stock=5)
    async with aiohttp.ClientSession() as http:
        sale, [(order, token)] = await reserve_in_sale(http, shop, world)
        status, answer = await call(http, "POST", f"{shop.url}/api/orders/{order['order_id']}/pay", token)
        assert (status, answer["error"]["code"]) == (409, "details_required"), answer
        assert stripe.requests == []
        conn = await asyncpg.connect(dsn_of(database_url))
        try:
            payments = await conn.fetchval(
                "SELECT count(*) FROM payments WHERE order_id = $1", order["order_id"]
            )
        finally:
            await conn.close()
        assert payments == 0
        assert await _status(database_url, order["order_id"]) == "reserved"
        book = await ledger(dsn_of(database_url), sale["sale_id"])
        assert (book.reserved_orders, book.on_hand) == (1, 5)
        status, started = await start_paying(http, shop.url, order["order_id"], token)
        assert status == 200 and started["mode"] == "stripe", started
