"""Orders after payment on the real server and PostgreSQL: every legal and illegal transition,
concurrent actions on one order, refunds that are exact under concurrency (the local Stripe),
the tracking CSV import, stock counted back only when chosen, and the buyer's room events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from commerce_client import call, dsn_of, guests, new_key, start_paying, start_sale
from helpers import LiveServer, World
from room_client import RoomClient

ACTIONS = ("cancel", "refund", "ship", "deliver", "close", "request_return", "accept_return", "refuse_return")
LEGAL = {
    ("reserved", "cancel"): "cancelled",
    ("paid", "cancel"): "cancelled",
    ("paid", "refund"): "refunded",
    ("paid", "ship"): "shipped",
    ("shipped", "refund"): "refunded",
    ("shipped", "deliver"): "delivered",
    ("shipped", "request_return"): "return_requested",
    ("delivered", "refund"): "refunded",
    ("delivered", "close"): "closed",
    ("delivered", "request_return"): "return_requested",
    ("return_requested", "accept_return"): "refunded",
    ("return_requested", "refuse_return"): "delivered",
}
REFUSED_WITH = {
    "cancel": "not_cancellable",
    "refund": "not_refundable",
    "ship": "not_shippable",
    "deliver": "not_deliverable",
    "close": "not_closable",
    "request_return": "not_returnable",
    "accept_return": "no_return_request",
    "refuse_return": "no_return_request",
}
# the path from a new order to each status: (action, by the buyer?)
PATHS = {
    "reserved": [],
    "paid": ["pay"],
    "shipped": ["pay", "ship"],
    "delivered": ["pay", "ship", "deliver"],
    "closed": ["pay", "ship", "deliver", "close"],
    "return_requested": ["pay", "ship", "deliver", "request_return"],
    "cancelled": ["cancel"],
    "refunded": ["pay", "refund"],
}
BUYER_ACTIONS = {"cancel", "request_return"}


@dataclass
class Shop:
    """A seeded shop with a long sale, on a server in payment test mode or with the local Stripe."""

    http: Any
    server: LiveServer
    world: World
    sale_id: int
    stripe: Any = None

    @property
    def operator(self) -> str:
        return self.world.tokens["operator"]

    async def order(self, quantity: int = 1) -> tuple[int, str]:
        """A new buyer's reserved order: (order id, the buyer's token)."""
        [(_, token)] = await guests(self.http, self.server.url, 1)
        status, body = await call(
            self.http,
            "POST",
            f"{self.server.url}/api/orders",
            token,
            {"sale_id": self.sale_id, "quantity": quantity, "idempotency_key": new_key()},
        )
        assert status == 200, body
        return body["order"]["order_id"], token

    async def pay(self, order_id: int, token: str) -> None:
        status, started = await start_paying(self.http, self.server.url, order_id, token)
        assert status == 200, started
        if self.stripe is None:
            status, body = await self.post(order_id, "test-confirm", token)
        else:
            event = self.stripe.event("payment_intent.succeeded", started["payment_intent"])
            status, body = await self.stripe.deliver(
                self.http, f"{self.server.url}/api/payments/stripe/webhook", event
            )
        assert status == 200, body

    async def post(self, order_id: int, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        return await call(self.http, "POST", f"{self.server.url}/api/orders/{order_id}/{path}", token, body)

    async def act(self, order_id: int, action: str, token: str) -> tuple[int, Any]:
        """Take an action through its endpoint, as the buyer (`token`) or the operator."""
        who = token if action in BUYER_ACTIONS else self.operator
        path, body = {
            "cancel": ("cancel", None),
            "refund": ("refund", {"reason": "goodwill"}),
            "ship": ("ship", {"carrier": "SF Express", "tracking_number": f"SF{order_id:010d}"}),
            "deliver": ("deliver", None),
            "close": ("close", None),
            "request_return": ("return", {"reason": "the lid is cracked"}),
            "accept_return": ("return/accept", {"restock": False}),
            "refuse_return": ("return/refuse", {"reason": "the photo shows no damage"}),
        }[action]
        return await self.post(order_id, path, who, body)

    async def order_in(self, status: str) -> tuple[int, str]:
        order_id, token = await self.order()
        for action in PATHS[status]:
            if action == "pay":
                await self.pay(order_id, token)
            else:
                code, body = await self.act(order_id, action, token)
                assert code == 200, body
        return order_id, token


async def open_shop(http, server: LiveServer, stripe=None, *, stock: int = 500, price: int = 1250) -> Shop:
    world = await server.seed(stock=stock)
    sale = await start_sale(
        http,
        server.url,
        world.tokens["operator"],
        room_id=world.room_id,
        sku_id=world.sku_id,
        allocated=stock // 2,
        per_user_limit=5,
        price=price,
        duration_s=3600,
    )
    return Shop(http, server, world, sale["sale_id"], stripe)


async def _fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _value(database_url: str, sql: str, *args: Any) -> Any:
    rows = await _fetch(database_url, sql, *args)
    return rows[0][0] if rows else None


async def test_every_action_moves_exactly_the_orders_it_may_and_refuses_the_rest_with_its_code(
    server, http, database_url
):
    shop = await open_shop(http, server)
    for status in PATHS:
        order_id, token = await shop.order_in(status)
        for action in ACTIONS:
            if (status, action) in LEGAL:
                fresh_id, fresh_token = await shop.order_in(status)
                code, body = await shop.act(fresh_id, action, fresh_token)
                assert code == 200, (status, action, body)
                assert body["order"]["status"] == LEGAL[status, action], (status, action)
                event = body["order"]["event"]
                assert (event["action"], event["from_status"], event["to_status"]) == (
                    action,
                    status,
                    LEGAL[status, action],
                )
                continue
            code, body = await shop.act(order_id, action, token)
            assert (code, body["error"]["code"]) == (409, REFUSED_WITH[action]), (status, action, body)
            assert body["error"]["details"]["status"] == status
            assert (
                await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id)
                == status
            )
    # nothing refused left an event behind: each order's events chain from one status to the next
    rows = await _fetch(
        database_url,
        "SELECT order_id, from_status::text, to_status::text FROM order_events ORDER BY order_id, id",
    )
    last: dict[int, str] = {}
    for row in rows:
        assert last.get(row["order_id"], "reserved") == row["from_status"]
        last[row["order_id"]] = row["to_status"]
    for order_id, status in last.items():
        assert await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id) == status


async def test_a_refused_return_puts_the_order_back_where_it_was_asked_from(server, http):
    shop = await open_shop(http, server)
    order_id, token = await shop.order_in("shipped")
    code, body = await shop.act(order_id, "request_return", token)
    assert code == 200 and body["order"]["status"] == "return_requested"
    code, body = await shop.post(order_id, "return/refuse", shop.operator, {"reason": ""})
    assert (code, body["error"]["code"]) == (400, "invalid")  # a refusal says why
    code, body = await shop.act(order_id, "refuse_return", token)
    assert code == 200 and body["order"]["status"] == "shipped"
    assert body["order"]["event"]["reason"] == "the photo shows no damage"
    code, body = await call(http, "GET", f"{server.url}/api/orders/{order_id}", token)
    assert [e["action"] for e in body["order"]["events"]] == [
        "pay",
        "ship",
        "request_return",
        "refuse_return",
    ]
    assert body["order"]["shipment"]["tracking_number"] == f"SF{order_id:010d}"


async def test_only_the_buyer_and_the_merchants_operators_act_on_an_order(server, http):
    shop = await open_shop(http, server)
    order_id, token = await shop.order_in("paid")
    [(_, stranger)] = await guests(http, server.url, 1)
    code, body = await shop.post(order_id, "cancel", stranger)
    assert (code, body["error"]["code"]) == (404, "not_found")
    code, body = await shop.post(
        order_id, "ship", token, {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
    )
    assert (code, body["error"]["code"]) == (403, "forbidden")
    code, body = await shop.post(
        order_id,
        "ship",
        shop.world.tokens["anchor"],
        {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"},
    )
    assert (code, body["error"]["code"]) == (403, "forbidden")
    other = await open_shop(http, server)
    code, body = await shop.post(
        order_id, "ship", other.operator, {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
    )
    assert (code, body["error"]["code"]) == (404, "not_found")
    code, body = await shop.post(
        order_id, "ship", shop.operator, {"carrier": "UPS", "tracking_number": "no!"}
    )
    assert (code, body["error"]["code"]) == (400, "invalid")
    assert "tracking_number" in body["error"]["message"]


async def test_cancel_and_ship_at_once_on_one_paid_order_have_exactly_one_winner(
    shop, stripe, http, database_url
):
    store = await open_shop(http, shop, stripe, stock=100)
    outcomes = []
    for _ in range(8):
        order_id, token = await store.order_in("paid")
        on_hand = await _value(database_url, "SELECT on_hand FROM skus WHERE id = $1", store.world.sku_id)
        cancel, ship = await asyncio.gather(
            store.act(order_id, "cancel", token), store.act(order_id, "ship", token)
        )
        assert sorted([cancel[0], ship[0]]) == [200, 409], (cancel, ship)
        status = await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id)
        parcels = await _value(database_url, "SELECT count(*) FROM shipments WHERE order_id = $1", order_id)
        refunded = await _value(
            database_url, "SELECT amount_refunded_minor FROM payments WHERE order_id = $1", order_id
        )
        now_on_hand = await _value(database_url, "SELECT on_hand FROM skus WHERE id = $1", store.world.sku_id)
        if cancel[0] == 200:
            assert ship[1]["error"]["code"] == "not_shippable"
            assert (status, parcels, refunded, now_on_hand) == ("cancelled", 0, 1250, on_hand + 1)
            # Stripe's word on that refund, arriving after, leaves the order cancelled
            intent = await _value(
                database_url, "SELECT provider_ref FROM payments WHERE order_id = $1", order_id
            )
            code, _ = await stripe.deliver(
                http, f"{shop.url}/api/payments/stripe/webhook", stripe.event("charge.refunded", intent)
            )
            assert code == 200
            assert (
                await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id)
                == "cancelled"
            )
        else:
            assert cancel[1]["error"]["code"] == "not_cancellable"
            assert (status, parcels, refunded, now_on_hand) == ("shipped", 1, 0, on_hand)
        outcomes.append(status)
    events = await _fetch(
        database_url,
        "SELECT e.order_id, count(*) FROM order_events e JOIN orders o ON o.id = e.order_id "
        "WHERE o.sale_id = $1 AND e.action IN ('cancel', 'ship') GROUP BY e.order_id",
        store.sale_id,
    )
    assert len(events) == 8 and all(row["count"] == 1 for row in events)
    assert len(stripe.refunds) == outcomes.count("cancelled")


async def test_concurrent_refunds_of_one_order_refund_it_once_and_never_more_than_was_paid(
    shop, stripe, http, database_url
):
    store = await open_shop(http, shop, stripe, stock=100, price=1999)
    order_id, token = await store.order_in("delivered")
    code, _ = await store.act(order_id, "request_return", token)
    assert code == 200
    calls = [store.post(order_id, "refund", store.operator, {"reason": "goodwill"}) for _ in range(5)]
    calls += [store.post(order_id, "return/accept", store.operator, {"restock": True}) for _ in range(5)]
    answers = await asyncio.gather(*calls)
    assert sorted(code for code, _ in answers) == [200] + [409] * 9
    assert {body["error"]["code"] for code, body in answers if code == 409} <= {
        "not_refundable",
        "no_return_request",
    }
    intent = await _value(database_url, "SELECT provider_ref FROM payments WHERE order_id = $1", order_id)
    assert sum(r["amount"] for r in stripe.refunds if r["payment_intent"] == intent) == 1999
    keys = {key for _, path, key, params in stripe.requests if path == "/v1/refunds"}
    assert keys == {f"order-{order_id}-refund"}
    payment = (await _fetch(database_url, "SELECT * FROM payments WHERE order_id = $1", order_id))[0]
    assert (payment["status"], payment["amount_refunded_minor"]) == ("refunded", 1999)
    # Stripe's own word on the refund, arriving after, changes nothing
    status, _ = await stripe.deliver(
        http, f"{shop.url}/api/payments/stripe/webhook", stripe.event("charge.refunded", intent)
    )
    assert status == 200
    status_now = await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id)
    assert status_now == "refunded"
    assert await _value(database_url, "SELECT count(*) FROM order_events WHERE order_id = $1", order_id) == 5


async def test_a_tracking_csv_ships_its_good_rows_and_says_why_each_bad_row_failed(
    server, http, database_url
):
    shop = await open_shop(http, server)
    first, _ = await shop.order_in("paid")
    second, _ = await shop.order_in("paid")
    unpaid, _ = await shop.order_in("reserved")
    other = await open_shop(http, server)
    foreign, _ = await other.order_in("paid")
    csv = (
        "\ufefforder_id,carrier,tracking_number\n"
        f"{first},SF Express,SF1234567890\n"
        f'{second},"YTO, Shanghai",YT9876543210\n'
        f"{unpaid},SF Express,SF0000000001\n"
        f"{first},SF Express,SF1234567891\n"
        "abc,SF Express,SF0000000002\n"
        f"{second + 1000000},SF Express,SF0000000003\n"
        f"{foreign},SF Express,SF0000000004\n"
        f"{second},SF Express,bad tracking!\n"
        "\n"
    ).encode()
    async with http.post(
        f"{server.url}/api/shipments/import",
        data=csv,
        headers={"Authorization": f"Bearer {shop.operator}", "Content-Type": "text/csv"},
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert (body["applied"], body["failed"]) == (2, 6)
    outcome = {row["line"]: row.get("error", {}).get("code", "applied") for row in body["rows"]}
    assert outcome == {
        2: "applied",
        3: "applied",
        4: "not_shippable",
        5: "not_shippable",
        6: "invalid",
        7: "not_found",
        8: "not_found",
        9: "invalid",
    }
    parcels = await _fetch(
        database_url, "SELECT order_id, carrier, tracking_number FROM shipments ORDER BY order_id"
    )
    assert [tuple(p) for p in parcels] == [
        (first, "SF Express", "SF1234567890"),
        (second, "YTO, Shanghai", "YT9876543210"),
    ]
    # the failed rows changed nothing: no parcel, no status, no event
    for order_id, status in ((unpaid, "reserved"), (foreign, "paid")):
        assert await _value(database_url, "SELECT status::text FROM orders WHERE id = $1", order_id) == status
    assert await _value(database_url, "SELECT count(*) FROM order_events WHERE action = 'ship'") == 2
    async with http.post(
        f"{server.url}/api/shipments/import",
        data=b"order,carrier\n1,x\n",
        headers={"Authorization": f"Bearer {shop.operator}", "Content-Type": "text/csv"},
    ) as response:
        assert response.status == 400
        assert "order_id,carrier,tracking_number" in (await response.json())["error"]["message"]
    [(_, buyer)] = await guests(http, server.url, 1)
    async with http.post(
        f"{server.url}/api/shipments/import",
        data=csv,
        headers={"Authorization": f"Bearer {buyer}", "Content-Type": "text/csv"},
    ) as response:
        assert response.status == 403


async def test_returned_goods_count_back_into_stock_only_when_the_operator_chooses(
    server, http, database_url
):
    shop = await open_shop(http, server)

    async def on_hand() -> int:
        return await _value(database_url, "SELECT on_hand FROM skus WHERE id = $1", shop.world.sku_id)

    kept_id, kept_token = await shop.order_in("delivered")
    back_id, back_token = await shop.order_in("delivered")
    for order_id, token in ((kept_id, kept_token), (back_id, back_token)):
        code, _ = await shop.act(order_id, "request_return", token)
        assert code == 200
    before = await on_hand()
    code, body = await shop.post(
        kept_id, "return/accept", shop.operator, {"restock": False, "reason": "opened"}
    )
    assert code == 200 and body["order"]["event"]["details"] == {"amount_minor": 1250, "restocked": False}
    assert await on_hand() == before
    code, body = await shop.post(back_id, "return/accept", shop.operator, {"restock": True})
    assert code == 200 and body["order"]["event"]["details"]["restocked"] is True
    assert await on_hand() == before + 1
    # a paid order cancelled before it ships always gives its units back
    paid_id, paid_token = await shop.order_in("paid")
    before = await on_hand()
    code, body = await shop.act(paid_id, "cancel", paid_token)
    assert code == 200 and body["order"]["status"] == "cancelled"
    assert await on_hand() == before + 1
    audit = await _fetch(
        database_url,
        "SELECT action, target_id FROM audit_log WHERE action LIKE 'order.%' AND target_id = ANY($1::text[]) ORDER BY id",
        [str(kept_id), str(back_id)],
    )
    assert [(row["action"], row["target_id"]) for row in audit][-2:] == [
        ("order.accept_return", str(kept_id)),
        ("order.accept_return", str(back_id)),
    ]


async def test_the_buyer_hears_each_change_of_their_order_on_the_room_socket(server, http):
    shop = await open_shop(http, server)
    order_id, token = await shop.order_in("paid")
    [(_, other_token)] = await guests(http, server.url, 1)
    buyer = await RoomClient.connect(server.room_ws(shop.world.room_id, token))
    other = await RoomClient.connect(server.room_ws(shop.world.room_id, other_token))
    try:
        await buyer.event("snapshot")
        await other.event("snapshot")
        code, _ = await shop.act(order_id, "ship", token)
        assert code == 200
        shipped = await buyer.event("order.shipped", order_id=order_id)
        assert shipped["seq"] is None
        assert shipped["data"]["status"] == "shipped"
        assert shipped["data"]["shipment"] == {
            "carrier": "SF Express",
            "tracking_number": f"SF{order_id:010d}",
            "shipped_at": shipped["data"]["shipment"]["shipped_at"],
            "delivered_at": None,
        }
        await shop.act(order_id, "deliver", token)
        delivered = await buyer.event("order.delivered", order_id=order_id)
        assert delivered["data"]["shipment"]["delivered_at"] is not None
        await shop.act(order_id, "request_return", token)
        await buyer.event("order.return_requested", order_id=order_id)
        await shop.act(order_id, "refuse_return", token)
        refused = await buyer.event("order.return_refused", order_id=order_id)
        assert refused["data"]["event"]["reason"] == "the photo shows no damage"
        assert refused["data"]["status"] == "delivered"
        # nobody else hears of it
        await other.ok("chat.send", {"text": "hello"})
        assert not [m for m in other.messages if str(m.get("type", "")).startswith("order.")]
    finally:
        await buyer.close()
        await other.close()


async def test_the_buyers_changes_feed_returns_events_after_a_point_with_the_orders_as_they_are(server, http):
    shop = await open_shop(http, server)
    order_id, token = await shop.order_in("paid")
    code, start = await call(http, "GET", f"{server.url}/api/orders/changes", token)
    assert code == 200 and start["last_event_id"] > 0 and start["events"] == []
    code, body = await call(
        http, "GET", f"{server.url}/api/orders/changes?after={start['last_event_id']}", token
    )
    assert body["events"] == [] and body["last_event_id"] == start["last_event_id"]
    await shop.act(order_id, "ship", token)
    code, body = await call(
        http, "GET", f"{server.url}/api/orders/changes?after={start['last_event_id']}", token
    )
    assert [e["action"] for e in body["events"]] == ["ship"]
    assert body["orders"][0]["status"] == "shipped" and body["last_event_id"] > start["last_event_id"]
    [(_, stranger)] = await guests(http, server.url, 1)
    code, body = await call(http, "GET", f"{server.url}/api/orders/changes?after=0", stranger)
    assert body["events"] == []
