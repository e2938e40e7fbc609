"""Flash sales through the real server: operator API, buyer answers, bad input, roles, room events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from commerce_client import call, dsn_of, guests, ledger, new_key, start_paying, start_sale
from helpers import start_server
from room_client import RoomClient

from livecommerce.commerce.events import STOCK_INTERVAL_S


async def _counts(database_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetchval("SELECT count(*) FROM orders"), await conn.fetchval(
            "SELECT count(*) FROM order_attempts"
        )
    finally:
        await conn.close()


async def test_reserve_then_repeated_key_returns_the_first_answer(server, database_url):
    world = await server.seed(stock=50)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=10,
            per_user_limit=2,
            price=500,
        )
        assert sale["state"] == "live" and sale["available"] == 10 and sale["list_price_minor"] == 1999
        [(buyer_id, token)] = await guests(http, server.url, 1)
        key = new_key()
        body = {"sale_id": sale["sale_id"], "quantity": 2, "idempotency_key": key}
        status, first = await call(http, "POST", f"{server.url}/api/orders", token, body)
        assert status == 200, first
        order = first["order"]
        assert first["outcome"] == "reserved" and order["amount_minor"] == 1000 and order["currency"] == "USD"
        assert order["user_id"] == buyer_id and order["reserved_until"] is not None
        status, again = await call(http, "POST", f"{server.url}/api/orders", token, body)
        assert status == 200 and again == first
        status, third = await call(
            http, "POST", f"{server.url}/api/orders", token, {**body, "idempotency_key": new_key()}
        )
        assert status == 409 and third["error"]["code"] == "limit_exceeded"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert (book.taken, book.available, book.allocated) == (2, 8, 10)
    assert book.sku_reserved == 10 and book.on_hand == 50
    assert book.ledger_per_user == {buyer_id: 2}


@pytest.mark.parametrize("batching", [True, False], ids=["batched", "row_lock"])
async def test_a_key_sent_again_for_another_purchase_is_refused_and_keeps_its_first_answer(
    settings, database_url, batching
):
    server = await start_server(settings.model_copy(update={"order_batching": batching}))
    try:
        worlds = [await server.seed(stock=50), await server.seed(stock=50)]
        world = worlds[0]
        async with aiohttp.ClientSession() as http:
            sales = [
                await start_sale(
                    http,
                    server.url,
                    each.tokens["operator"],
                    room_id=each.room_id,
                    sku_id=each.sku_id,
                    allocated=10,
                    per_user_limit=3,
                )
                for each in worlds
            ]
            [(_, token)] = await guests(http, server.url, 1)
            body = {"sale_id": sales[0]["sale_id"], "quantity": 1, "idempotency_key": new_key()}
            status, first = await call(http, "POST", f"{server.url}/api/orders", token, body)
            assert status == 200 and first["outcome"] == "reserved"
            for changed in ({"quantity": 2}, {"sale_id": sales[1]["sale_id"]}):
                status, refused = await call(
                    http, "POST", f"{server.url}/api/orders", token, {**body, **changed}
                )
                assert status == 409 and refused["error"]["code"] == "idempotency_key_reused", refused
            client = await RoomClient.connect(server.room_ws(world.room_id, token))
            await client.event("snapshot")
            over_ws = await client.send("order.place", {**body, "quantity": 3})
            assert over_ws["error"]["code"] == "idempotency_key_reused"
            assert (await client.ok("order.place", body)) == first
            await client.close()
            status, again = await call(http, "POST", f"{server.url}/api/orders", token, body)
            assert status == 200 and again == first
        books = [await ledger(dsn_of(database_url), sale["sale_id"]) for sale in sales]
        assert [(book.taken, book.answers) for book in books] == [(1, 1), (0, 0)]
    finally:
        await server.runner.cleanup()


async def test_bad_input_gets_typed_errors_and_writes_nothing(server, database_url):
    world = await server.seed(stock=20)
    other = await server.seed(stock=20)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=5,
        )
        later = await start_sale(
            http,
            server.url,
            other.tokens["operator"],
            room_id=other.room_id,
            sku_id=other.sku_id,
            allocated=5,
            starts_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        )
        assert later["state"] == "scheduled"
        [(_, token)] = await guests(http, server.url, 1)
        url = f"{server.url}/api/orders"
        cases = [
            ({"sale_id": sale["sale_id"], "quantity": -1, "idempotency_key": new_key()}, 400, "invalid"),
            ({"sale_id": sale["sale_id"], "quantity": 0, "idempotency_key": new_key()}, 400, "invalid"),
            ({"sale_id": sale["sale_id"], "quantity": 10**15, "idempotency_key": new_key()}, 400, "invalid"),
            ({"sale_id": sale["sale_id"], "quantity": "1", "idempotency_key": new_key()}, 400, "invalid"),
            (
                {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": "no spaces allowed"},
                400,
                "invalid",
            ),
            ({"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": "short"}, 400, "invalid"),
            ({"sale_id": sale["sale_id"], "quantity": 1}, 400, "invalid"),
            ({"sale_id": 999_999, "quantity": 1, "idempotency_key": new_key()}, 404, "not_found"),
            (
                {"room_id": world.room_id, "sku_id": 999_999, "quantity": 1, "idempotency_key": new_key()},
                404,
                "not_found",
            ),
            (
                {
                    "room_id": world.room_id,
                    "sku_id": other.sku_id,
                    "quantity": 1,
                    "idempotency_key": new_key(),
                },
                400,
                "invalid",
            ),
            (
                {
                    "sale_id": sale["sale_id"],
                    "room_id": other.room_id,
                    "quantity": 1,
                    "idempotency_key": new_key(),
                },
                400,
                "invalid",
            ),
            (
                {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": new_key(), "price": 0},
                400,
                "invalid",
            ),
        ]
        for body, status_expected, code in cases:
            status, answer = await call(http, "POST", url, token, body)
            assert (status, answer["error"]["code"]) == (status_expected, code), body
        status, answer = await call(
            http, "POST", url, None, {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": new_key()}
        )
        assert status == 401
        assert await _counts(database_url) == (0, 0)
        # a sale that is not live answers, and that answer is the key's first answer
        key = new_key()
        status, answer = await call(
            http, "POST", url, token, {"sale_id": later["sale_id"], "idempotency_key": key}
        )
        assert (status, answer["error"]["code"]) == (409, "not_started")
    assert await _counts(database_url) == (0, 1)


async def test_operator_api_is_role_checked_and_audited(server, database_url):
    world = await server.seed(stock=30)
    other = await server.seed(stock=30)
    async with aiohttp.ClientSession() as http:
        body = {"room_id": world.room_id, "sku_id": world.sku_id, "sale_price_minor": 100, "allocated": 5}
        for token in (world.tokens["moderator"], other.tokens["operator"]):
            status, answer = await call(http, "POST", f"{server.url}/api/sales", token, body)
            assert (status, answer["error"]["code"]) == (403, "forbidden")
        [(_, viewer)] = await guests(http, server.url, 1)
        status, _ = await call(http, "POST", f"{server.url}/api/sales", viewer, body)
        assert status == 403
        status, _ = await call(
            http, "POST", f"{server.url}/api/skus/{world.sku_id}/stock", world.tokens["anchor"], {"delta": 5}
        )
        assert status == 403
        status, stock = await call(
            http,
            "POST",
            f"{server.url}/api/skus/{world.sku_id}/stock",
            world.tokens["operator"],
            {"delta": 5},
        )
        assert status == 200 and stock["on_hand"] == 35
        sale = await start_sale(
            http, server.url, world.tokens["anchor"], room_id=world.room_id, sku_id=world.sku_id, allocated=30
        )
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/skus/{world.sku_id}/stock",
            world.tokens["operator"],
            {"delta": -10},
        )
        assert (status, answer["error"]["code"]) == (409, "insufficient_stock")
        status, answer = await call(http, "POST", f"{server.url}/api/sales", world.tokens["operator"], body)
        assert (status, answer["error"]["code"]) == (409, "conflict")
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/sales",
            world.tokens["operator"],
            {**body, "sku_id": other.sku_id},
        )
        assert (status, answer["error"]["code"]) == (400, "invalid")  # another merchant's SKU
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/sales",
            other.tokens["admin"],
            {**body, "room_id": other.room_id, "sku_id": other.sku_id},
        )
        assert status == 201  # admins act for any merchant
        status, _ = await call(
            http, "POST", f"{server.url}/api/sales/{sale['sale_id']}/end", other.tokens["operator"]
        )
        assert status == 403
        status, product = await call(
            http,
            "POST",
            f"{server.url}/api/products",
            world.tokens["operator"],
            {"name": "Honey", "image_url": "https://example.com/h.jpg"},
        )
        assert status == 201
        status, sku = await call(
            http,
            "POST",
            f"{server.url}/api/products/{product['product_id']}/skus",
            world.tokens["operator"],
            {"code": "HONEY", "name": "Jar", "price_minor": 900, "on_hand": 4},
        )
        assert status == 201
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/sales",
            world.tokens["operator"],
            {**body, "sku_id": sku["sku_id"], "allocated": 5},
        )
        assert (status, answer["error"]["code"]) == (409, "insufficient_stock")
        status, inventory = await call(http, "GET", f"{server.url}/api/inventory", world.tokens["anchor"])
        assert {row["code"]: row["available"] for row in inventory["skus"]} == {"TEA": 5, "HONEY": 4}
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        actions = {row["action"] for row in await conn.fetch("SELECT action FROM audit_log")}
    finally:
        await conn.close()
    assert {"sku.stock", "sale.create", "product.create", "sku.create"} <= actions


async def test_restock_reopens_a_sold_out_sale_and_everyone_sees_it(server, database_url, http, sale_floor):
    floor = await sale_floor(server, stock=10, allocated=1, per_user_limit=5, buyers=2)
    world, sale, [(_, first), (_, second)] = floor.world, floor.sale, floor.buyers
    watcher = await RoomClient.connect(server.room_ws(world.room_id, second))
    try:
        snapshot = await watcher.event("snapshot")
        assert [s["sale_id"] for s in snapshot["data"]["sales"]] == [sale["sale_id"]]
        order = {"sale_id": sale["sale_id"], "quantity": 1}
        status, _ = await call(
            http, "POST", f"{server.url}/api/orders", first, {**order, "idempotency_key": new_key()}
        )
        assert status == 200
        await watcher.event("sale.sold_out", sale_id=sale["sale_id"])
        await watcher.event("stock", sale_id=sale["sale_id"], available=0, state="sold_out")
        status, answer = await call(
            http, "POST", f"{server.url}/api/orders", second, {**order, "idempotency_key": new_key()}
        )
        assert answer["error"]["code"] == "sold_out"
        status, view = await call(
            http,
            "POST",
            f"{server.url}/api/sales/{sale['sale_id']}/restock",
            world.tokens["operator"],
            {"units": 3, "receive": True},
        )
        assert status == 200 and view["state"] == "live" and view["available"] == 3 and view["allocated"] == 4
        await watcher.event("sale.live", sale_id=sale["sale_id"])
        await watcher.event("stock", sale_id=sale["sale_id"], available=3, state="live")
        status, view = await call(
            http,
            "POST",
            f"{server.url}/api/sales/{sale['sale_id']}/price",
            world.tokens["operator"],
            {"sale_price_minor": 777},
        )
        assert view["sale_price_minor"] == 777
        await watcher.event("sale.repriced", sale_price_minor=777)
        status, answer = await call(
            http, "POST", f"{server.url}/api/orders", second, {**order, "idempotency_key": new_key()}
        )
        assert answer["order"]["amount_minor"] == 777
    finally:
        await watcher.close()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert (book.allocated, book.available, book.taken) == (4, 2, 2)
    assert (book.on_hand, book.sku_reserved) == (13, 4)


async def test_ending_a_sale_gives_unsold_units_back_to_the_sku(server, database_url):
    world = await server.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=6,
        )
        [(_, buyer)] = await guests(http, server.url, 1)
        await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            buyer,
            {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
        )
        status, view = await call(
            http, "POST", f"{server.url}/api/sales/{sale['sale_id']}/end", world.tokens["operator"]
        )
        assert status == 200 and view["state"] == "ended"
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            buyer,
            {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
        )
        assert answer["error"]["code"] == "ended"
        status, answer = await call(
            http, "POST", f"{server.url}/api/sales/{sale['sale_id']}/end", world.tokens["operator"]
        )
        assert answer["error"]["code"] == "ended"
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.sku_reserved == 1  # only the unpaid order's unit is still promised


async def test_scheduled_sale_goes_live_and_ends_on_its_clock(server, database_url):
    world = await server.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        [(_, viewer)] = await guests(http, server.url, 1)
        watcher = await RoomClient.connect(server.room_ws(world.room_id, viewer))
        try:
            await watcher.event("snapshot")
            starts = datetime.now(UTC) + timedelta(seconds=1)
            sale = await start_sale(
                http,
                server.url,
                world.tokens["operator"],
                room_id=world.room_id,
                sku_id=world.sku_id,
                allocated=4,
                starts_at=starts.isoformat(),
                duration_s=1.5,
            )
            assert sale["state"] == "scheduled" and sale["starts_in_s"] > 0
            await watcher.event("sale.scheduled", sale_id=sale["sale_id"])
            await watcher.event("sale.live", sale_id=sale["sale_id"])
            ended = await watcher.event("sale.ended", sale_id=sale["sale_id"])
            assert ended["data"]["ends_in_s"] == 0
        finally:
            await watcher.close()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.sku_reserved == 0


async def test_orders_over_the_room_socket_with_private_results_and_staff_feed(server, database_url):
    world = await server.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=3,
            price=1234,
        )
        [(_, buyer), (_, bystander)] = await guests(http, server.url, 2)
    staff = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["operator"]))
    viewer = await RoomClient.connect(server.room_ws(world.room_id, buyer))
    other = await RoomClient.connect(server.room_ws(world.room_id, bystander))
    try:
        for client in (staff, viewer, other):
            await client.event("snapshot")
        key = new_key()
        placed = await viewer.ok(
            "order.place", {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": key}
        )
        assert placed["outcome"] == "reserved" and placed["order"]["amount_minor"] == 1234
        assert (
            await viewer.ok(
                "order.place", {"sale_id": sale["sale_id"], "quantity": 1, "idempotency_key": key}
            )
            == placed
        )
        by_sku = await viewer.send("order.place", {"sku_id": world.sku_id, "idempotency_key": new_key()})
        assert by_sku["type"] == "error" and by_sku["error"]["code"] == "limit_exceeded"
        bad = await viewer.send(
            "order.place", {"sale_id": sale["sale_id"], "quantity": -5, "idempotency_key": key}
        )
        assert bad["error"]["code"] == "invalid"
        order_id = placed["order"]["order_id"]
        await viewer.event("order.updated", order_id=order_id, status="reserved")
        feed = await staff.event("order.feed", order_id=order_id)
        assert feed["data"]["buyer"] == "Buyer 0" and feed["seq"] is None
        await other.event("stock", sale_id=sale["sale_id"], available=2)
        cancelled = await viewer.ok("order.cancel", {"order_id": order_id})
        assert cancelled["order"]["status"] == "cancelled"
        await viewer.event("order.updated", order_id=order_id, status="cancelled")
        await other.event("stock", sale_id=sale["sale_id"], available=3)
        assert not other.events("order.updated") and not other.events("order.feed")
        again = await viewer.send("order.cancel", {"order_id": order_id})
        assert again["error"]["code"] == "not_cancellable"
        stranger = await other.send("order.cancel", {"order_id": order_id})
        assert stranger["error"]["code"] == "not_found"
        rejoined = await RoomClient.connect(server.room_ws(world.room_id, buyer))
        snapshot = await rejoined.event("snapshot")
        assert [o["order_id"] for o in snapshot["data"]["orders"]] == [order_id]
        assert snapshot["data"]["order_feed"] is None
        await rejoined.close()
        staff_again = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["operator"]))
        staff_snapshot = await staff_again.event("snapshot")
        assert [o["order_id"] for o in staff_snapshot["data"]["order_feed"]] == [order_id]
        await staff_again.close()
        async with aiohttp.ClientSession() as http:
            orders_url = f"{server.url}/api/rooms/{world.room_id}/orders"
            for query, expected in (
                ("", [order_id]),
                ("?status=cancelled", [order_id]),
                ("?status=paid", []),
            ):
                status, body = await call(http, "GET", orders_url + query, world.tokens["operator"])
                assert status == 200 and [o["order_id"] for o in body["orders"]] == expected
            status, body = await call(http, "GET", orders_url + "?status=lost", world.tokens["operator"])
            assert status == 400 and body["error"]["code"] == "invalid"
    finally:
        for client in (staff, viewer, other):
            await client.close()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert (book.available, book.taken, book.ledger_per_user) == (3, 0, {})


async def test_product_card_shows_the_running_sale(server):
    from livecommerce.appkeys import SESSION_FACTORY
    from livecommerce.commerce.catalog import product_card

    world = await server.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=4,
            price=555,
        )
    async with server.app[SESSION_FACTORY]() as session:
        card = await product_card(session, world.product_id)
    [sku] = card["skus"]
    assert sku["available"] == 6
    assert sku["sale"]["sale_id"] == sale["sale_id"] and sku["sale"]["sale_price_minor"] == 555
    assert sku["sale"]["available"] == 4 and 0 < sku["sale"]["ends_in_s"] <= 600


async def test_dashboard_counts_paid_orders_and_exports_csv(server, http, sale_floor):
    floor = await sale_floor(server, stock=10, allocated=5, per_user_limit=3, price=300, buyers=3)
    world, sale, buyers = floor.world, floor.sale, floor.buyers
    for index, (_, token) in enumerate(buyers):
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            token,
            {"sale_id": sale["sale_id"], "quantity": index + 1, "idempotency_key": new_key()},
        )
        if answer.get("outcome") == "reserved" and index < 2:
            order_id = answer["order"]["order_id"]
            status, _ = await start_paying(http, server.url, order_id, token)
            status, _ = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", token)
            assert status == 200
    url = f"{server.url}/api/rooms/{world.room_id}/dashboard"
    status, data = await call(http, "GET", url, buyers[0][1])
    assert status == 403
    status, data = await call(http, "GET", url, world.tokens["anchor"])
    assert status == 200
    assert data["totals"] == {"taps": 3, "orders": 2, "paid_orders": 2, "units": 3, "gmv_minor": 900}
    [product] = data["products"]
    assert product["tappers"] == 3 and product["buyers"] == 2 and product["tap_conversion"] == round(2 / 3, 4)
    assert data["peak_viewers"] == 0 and data["viewers"] == [] and product["viewer_conversion"] is None
    status, csv_text = await call(http, "GET", url + "?format=csv&bucket_s=3600", world.tokens["anchor"])
    lines = csv_text.strip().splitlines()
    assert lines[0] == "bucket_start,product_id,orders,paid_orders,units,gmv_minor,viewers"
    assert lines[1].endswith(f",{world.product_id},2,2,3,900,0")


async def test_stock_events_are_coalesced_and_end_on_the_true_value(server, database_url, http, sale_floor):
    floor = await sale_floor(server, stock=200, allocated=150, buyers=120)
    world, sale, buyers = floor.world, floor.sale, floor.buyers
    watcher = await RoomClient.connect(server.room_ws(world.room_id, buyers[0][1]))
    try:
        await watcher.event("snapshot")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _, token in buyers:  # one tap after another: every tap changes the stock
            await call(
                http,
                "POST",
                f"{server.url}/api/orders",
                token,
                {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
            )
        await watcher.event("stock", sale_id=sale["sale_id"], available=30)
        elapsed = loop.time() - started
        stock = watcher.events("stock")
        assert len(stock) <= elapsed / STOCK_INTERVAL_S + 2
        assert stock[-1]["data"]["available"] == 30
    finally:
        await watcher.close()
    book = await ledger(dsn_of(database_url), sale["sale_id"])
    assert book.available == 30


async def test_the_merchant_chooses_whether_a_sale_stays_open_after_the_live(server):
    world = await server.seed(stock=10)
    operator = world.tokens["operator"]
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http, server.url, operator, room_id=world.room_id, sku_id=world.sku_id, allocated=5
        )
        assert sale["keep_open_after_live"] is False
        url = f"{server.url}/api/sales/{sale['sale_id']}/after-live"
        [(_, buyer)] = await guests(http, server.url, 1)
        viewer = await RoomClient.connect(server.room_ws(world.room_id, buyer))
        try:
            await viewer.event("snapshot")
            status, answer = await call(http, "POST", url, buyer, {"keep_open_after_live": True})
            assert status == 403, answer
            status, answer = await call(http, "POST", url, operator, {"keep_open_after_live": "yes"})
            assert status == 400 and answer["error"]["code"] == "invalid"
            status, view = await call(http, "POST", url, operator, {"keep_open_after_live": True})
            assert status == 200 and view["keep_open_after_live"] is True
            assert view["version"] > sale["version"]
            updated = await viewer.event("sale.updated", sale_id=sale["sale_id"])
            assert updated["data"]["keep_open_after_live"] is True
        finally:
            await viewer.close()
        await call(http, "POST", f"{server.url}/api/sales/{sale['sale_id']}/end", operator)
        status, answer = await call(http, "POST", url, operator, {"keep_open_after_live": False})
        assert status == 409 and answer["error"]["code"] == "ended"
