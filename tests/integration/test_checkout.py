"""Checkout against real PostgreSQL through the real server: the live's bag, buying at list price
with variants, buyers' details and who may see them (audited), and guests who sign up."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections import Counter

import asyncpg
from commerce_client import call, dsn_of, guests, new_key, start_paying, start_sale
from room_client import RoomClient

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.db.models import Sku

DETAILS = {
    "name": "Li Lei",
    "phone": "+86 138 0013 8000",
    "email": "Li.Lei@Example.com",
    "line1": "88 Jianguo Road",
    "line2": "Unit 5",
    "city": "Hangzhou",
    "region": "Zhejiang",
    "postal_code": "310000",
    "country": "cn",
}


async def add_variant(server, world, *, code: str, name: str, price_minor: int, stock: int) -> int:
    """A second SKU of the world's product (e.g. the large basket next to the small one)."""
    async with server.app[SESSION_FACTORY].begin() as session:
        sku = Sku(
            product_id=world.product_id,
            merchant_id=world.merchant_id,
            code=code,
            name=name,
            price_minor=price_minor,
            currency="USD",
            on_hand=stock,
        )
        session.add(sku)
        await session.flush()
        return sku.id


async def put_in_bag(http, server, world) -> list:
    status, body = await call(
        http, "PUT", f"{server.url}/api/rooms/{world.room_id}/bag/{world.product_id}", world.tokens["anchor"]
    )
    assert status == 200, body
    return body["products"]


async def buy(http, server, world, token, sku_id, quantity=1, key=None):
    body = {
        "room_id": world.room_id,
        "sku_id": sku_id,
        "quantity": quantity,
        "idempotency_key": key or new_key(),
    }
    return await call(http, "POST", f"{server.url}/api/orders", token, body)


async def access_rows(database_url: str) -> list:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetch(
            "SELECT actor_id, actor_role, merchant_id, action, order_ids FROM personal_data_access ORDER BY id"
        )
    finally:
        await conn.close()


async def test_buyer_details_are_refused_field_by_field_with_their_own_codes(server, http):
    [(_, token)] = await guests(http, server.url, 1)
    url = f"{server.url}/api/me/details"
    cases = [
        ({**DETAILS, "name": "  "}, "invalid_name", "name"),
        ({**DETAILS, "phone": "call me"}, "invalid_phone", "phone"),
        ({**DETAILS, "phone": "+86 12"}, "invalid_phone", "phone"),
        ({**DETAILS, "email": "li.lei@"}, "invalid_email", "email"),
        ({**DETAILS, "line1": ""}, "invalid_address", "line1"),
        ({**DETAILS, "city": "x" * 101}, "invalid_address", "city"),
        ({**DETAILS, "postal_code": "31#000"}, "invalid_address", "postal_code"),
        ({**DETAILS, "country": "China"}, "invalid_country", "country"),
        ({**DETAILS, "country": "1A"}, "invalid_country", "country"),
        ({**DETAILS, "phone": 13800138000}, "invalid_phone", "phone"),
    ]
    for details, code, field in cases:
        status, answer = await call(http, "PUT", url, token, {"details": details})
        assert (status, answer["error"]["code"], answer["error"]["details"]["field"]) == (400, code, field), (
            details
        )
    status, answer = await call(http, "PUT", url, token, {"details": {**DETAILS, "fax": "1"}})
    assert (status, answer["error"]["code"]) == (400, "invalid")
    status, answer = await call(http, "GET", url, token)
    assert (status, answer) == (200, {"details": None})  # nothing refused was kept
    status, answer = await call(http, "PUT", url, token, {"details": DETAILS})
    assert status == 200
    assert answer["details"]["phone"] == "+8613800138000"
    assert answer["details"]["email"] == "li.lei@example.com"
    assert answer["details"]["country"] == "CN"


async def test_a_bag_product_sells_at_list_price_per_variant_and_the_sale_price_only_on_the_sale_sku(
    server, http
):
    world = await server.seed(stock=10, price_minor=1200)
    large = await add_variant(server, world, code="TEA-L", name="1 kg", price_minor=3900, stock=4)
    [(_, token)] = await guests(http, server.url, 1)
    # not in the live's bag yet: refused, and nothing is recorded for the key
    key = new_key()
    status, answer = await buy(http, server, world, token, large, key=key)
    assert (status, answer["error"]["code"]) == (409, "not_offered")
    cards = await put_in_bag(http, server, world)
    assert [[s["sku_id"] for s in c["skus"]] for c in cards] == [[world.sku_id, large]]
    status, answer = await buy(http, server, world, token, large, quantity=3, key=key)
    assert status == 200, answer
    order = answer["order"]
    assert (order["sku_id"], order["sale_id"], order["unit_price_minor"], order["amount_minor"]) == (
        large,
        None,
        3900,
        11700,
    )
    status, answer = await buy(http, server, world, token, large, quantity=2)
    assert (status, answer["error"]["code"]) == (409, "insufficient_stock")
    status, answer = await buy(http, server, world, token, large, quantity=1, key=key)
    assert (status, answer["error"]["code"]) == (409, "idempotency_key_reused")
    # a flash sale on the small variant: its price applies to that SKU only, while it runs
    sale = await start_sale(
        http,
        server.url,
        world.tokens["operator"],
        room_id=world.room_id,
        sku_id=world.sku_id,
        allocated=5,
        price=500,
    )
    status, answer = await buy(http, server, world, token, world.sku_id)
    assert (answer["order"]["sale_id"], answer["order"]["unit_price_minor"]) == (sale["sale_id"], 500)
    status, answer = await buy(http, server, world, token, large)
    assert (answer["order"]["sale_id"], answer["order"]["unit_price_minor"]) == (None, 3900)
    status, _ = await call(
        http, "POST", f"{server.url}/api/sales/{sale['sale_id']}/end", world.tokens["operator"]
    )
    assert status == 200
    status, answer = await buy(http, server, world, token, world.sku_id, quantity=2)
    assert (answer["order"]["sale_id"], answer["order"]["unit_price_minor"]) == (None, 1200)
    status, answer = await buy(http, server, world, token, large)
    assert (status, answer["error"]["code"]) == (409, "sold_out")
    # the bag shows what is left of each variant
    status, answer = await call(http, "GET", f"{server.url}/api/rooms/{world.room_id}/bag")
    left = {s["sku_id"]: s["available"] for s in answer["products"][0]["skus"]}
    assert left == {world.sku_id: 10 - 1 - 2, large: 0}
    # the sales dashboard counts taps at list price with the sale's: six answered taps, one buyer
    status, answer = await call(
        http, "GET", f"{server.url}/api/rooms/{world.room_id}/dashboard", world.tokens["operator"]
    )
    [tea] = answer["products"]
    assert (tea["taps"], tea["tappers"], tea["orders"]) == (6, 1, 4)


async def test_many_buyers_of_two_variants_at_list_price_never_oversell_and_keys_answer_once(
    server, http, database_url
):
    """60 buyers over HTTP and the room socket at once, each tapping a variant and quantity with
    its own key, each key sent twice: no SKU sells more than it has, a repeated key answers the
    same order, and every tap gets reserved, sold_out or insufficient_stock."""
    world = await server.seed(stock=9, price_minor=1500)
    large = await add_variant(server, world, code="TEA-L", name="1 kg", price_minor=4000, stock=6)
    stock = {world.sku_id: 9, large: 6}
    await put_in_bag(http, server, world)
    buyers = await guests(http, server.url, 60)
    rng = random.Random(6)
    taps = [(user, token, rng.choice(list(stock)), rng.randint(1, 3), new_key()) for user, token in buyers]
    sockets = [await RoomClient.connect(server.room_ws(world.room_id, token)) for _, token, *_ in taps[::2]]
    by_socket = dict(zip([t[4] for t in taps[::2]], sockets, strict=True))

    async def tap(token, sku_id, quantity, key):
        socket = by_socket.get(key)
        if socket is None:
            status, answer = await buy(http, server, world, token, sku_id, quantity, key)
            return answer["order"]["order_id"] if status == 200 else answer["error"]["code"]
        reply = await socket.send(
            "order.place", {"sku_id": sku_id, "quantity": quantity, "idempotency_key": key}, timeout=60
        )
        return reply["data"]["order"]["order_id"] if reply["type"] == "ack" else reply["error"]["code"]

    try:
        answers = await asyncio.gather(
            *(tap(token, sku, q, key) for _, token, sku, q, key in taps for _ in range(2))
        )
    finally:
        for socket in sockets:
            await socket.close()
    first, second = answers[0::2], answers[1::2]
    assert first == second  # each key sent twice got one answer
    assert {a for a in first if isinstance(a, str)} <= {"sold_out", "insufficient_stock"}
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        orders = await conn.fetch(
            "SELECT id, user_id, sku_id, quantity, unit_price_minor, idempotency_key FROM orders WHERE merchant_id = $1",
            world.merchant_id,
        )
        skus = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, on_hand, reserved FROM skus WHERE id = ANY($1)", list(stock)
            )
        }
        attempts = await conn.fetchval(
            "SELECT count(*) FROM order_attempts WHERE sku_id = ANY($1)", list(stock)
        )
    finally:
        await conn.close()
    assert attempts == len(taps)
    assert sorted(o["id"] for o in orders) == sorted(a for a in first if isinstance(a, int))
    sold: Counter[int] = Counter()
    for order in orders:
        sold[order["sku_id"]] += order["quantity"]
        assert order["unit_price_minor"] == (1500 if order["sku_id"] == world.sku_id else 4000)
    for sku_id, units in stock.items():
        assert sold[sku_id] == skus[sku_id]["reserved"] <= units
    # a refused tap asked for more than was left then, and stock only fell since
    for (_, _, sku_id, quantity, _), answer in zip(taps, first, strict=True):
        if isinstance(answer, str):
            assert quantity > stock[sku_id] - sold[sku_id]


async def test_an_address_is_seen_by_its_buyer_and_the_shops_operators_only_and_staff_looks_are_recorded(
    server, http, database_url
):
    world = await server.seed(stock=20)
    other = await server.seed(stock=20)
    await put_in_bag(http, server, world)
    [(_, token), (_, stranger)] = await guests(http, server.url, 2)
    _, answer = await buy(http, server, world, token, world.sku_id, quantity=2)
    order_id = answer["order"]["order_id"]
    url = f"{server.url}/api/orders/{order_id}/shipping"
    status, answer = await call(http, "PUT", url, stranger, {"details": DETAILS})
    assert (status, answer["error"]["code"]) == (404, "not_found")
    status, answer = await call(http, "PUT", url, token, {"details": DETAILS, "remember": True})
    assert status == 200
    given = answer["shipping"]
    assert given["name"] == "Li Lei" and given["country"] == "CN"

    status, answer = await call(http, "GET", url, token)
    assert (status, answer["shipping"]) == (200, given)
    assert await access_rows(database_url) == []  # the buyer's own look is not a staff access
    status, answer = await call(http, "GET", url, world.tokens["operator"])
    assert (status, answer["shipping"]) == (200, given)
    staff_refused = [world.tokens[role] for role in ("anchor", "moderator", "admin")] + [
        other.tokens["operator"]
    ]
    for who in staff_refused:
        status, answer = await call(http, "GET", url, who)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
    status, answer = await call(http, "GET", url, stranger)
    assert (status, answer["error"]["code"]) == (404, "not_found")
    # staff order views carry no address
    status, answer = await call(
        http, "GET", f"{server.url}/api/rooms/{world.room_id}/orders", world.tokens["anchor"]
    )
    assert status == 200 and "shipping" not in answer["orders"][0]

    export = f"{server.url}/api/merchants/{world.merchant_id}/orders.csv?room_id={world.room_id}"
    for who in [*staff_refused, token]:
        status, answer = await call(http, "GET", export, who)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
    status, text = await call(http, "GET", export, world.tokens["operator"])
    assert status == 200
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert (row["order_id"], row["quantity"], row["name"], row["phone"], row["line1"]) == (
        str(order_id),
        "2",
        "Li Lei",
        "'+8613800138000",  # shown as text by spreadsheets, never run as a formula
        "88 Jianguo Road",
    )
    operator_id = world.user_ids["operator"]
    assert [tuple(r) for r in await access_rows(database_url)] == [
        (operator_id, "operator", world.merchant_id, "address.view", [order_id]),
        (operator_id, "operator", world.merchant_id, "address.export", [order_id]),
    ]

    # the remembered details fill the next checkout; deleting them leaves the order's copy
    status, answer = await call(http, "GET", f"{server.url}/api/me/details", token)
    assert answer["details"] == given
    status, answer = await call(http, "DELETE", f"{server.url}/api/me/details", token)
    assert (status, answer) == (200, {"deleted": True})
    status, answer = await call(http, "GET", f"{server.url}/api/me/details", token)
    assert answer == {"details": None}
    status, answer = await call(http, "GET", url, token)
    assert answer["shipping"] == given


async def test_a_guest_who_signs_up_keeps_its_orders_and_details_under_the_new_login(server, http):
    world = await server.seed(stock=20)
    await put_in_bag(http, server, world)
    [(guest_id, guest_token)] = await guests(http, server.url, 1)
    _, answer = await buy(http, server, world, guest_token, world.sku_id, quantity=2)
    order_id = answer["order"]["order_id"]
    await call(http, "PUT", f"{server.url}/api/me/details", guest_token, {"details": DETAILS})
    signup = f"{server.url}/api/auth/signup"
    # a phone number is a login too, however it is typed
    [(_, second_guest)] = await guests(http, server.url, 1)
    body = {"login": "+86 139-0013-9000", "password": "password123"}
    status, _ = await call(http, "POST", signup, second_guest, body)
    assert status == 200
    assert await _login(http, server, "+8613900139000")
    # without a guest's token, a new account; chat never shows its login as its name
    body = {"login": "new@example.com", "password": "password123"}
    status, answer = await call(http, "POST", signup, None, body)
    assert status == 200 and answer["user"]["is_guest"] is False
    assert "new@" not in answer["user"]["display_name"]
    for body, code in (
        ({"login": "not an email", "password": "password123"}, "invalid_phone"),
        ({"login": "ann@", "password": "password123"}, "invalid_email"),
        ({"login": "ann@example.com", "password": "short"}, "weak_password"),
        ({"login": "+8613900139000", "password": "password123"}, "already_exists"),
    ):
        status, answer = await call(http, "POST", signup, guest_token, body)
        assert answer["error"]["code"] == code, body
    status, answer = await call(
        http, "POST", signup, guest_token, {"login": "Ann@Example.com", "password": "password123"}
    )
    assert status == 200, answer
    assert answer["user"]["id"] == guest_id and answer["user"]["is_guest"] is False
    status, answer = await call(http, "GET", f"{server.url}/api/orders", guest_token)
    assert status == 401  # the guest's tokens are revoked: the account signs in with its login
    account = await _login(http, server, "ann@example.com")
    status, answer = await call(
        http, "POST", signup, account, {"login": "x@example.com", "password": "password123"}
    )
    assert (status, answer["error"]["code"]) == (409, "already_registered")
    status, answer = await call(http, "GET", f"{server.url}/api/orders", account)
    assert [o["order_id"] for o in answer["orders"]] == [order_id]
    status, answer = await call(http, "GET", f"{server.url}/api/me/details", account)
    assert answer["details"]["name"] == "Li Lei"


async def _login(http, server, login: str) -> str:
    status, answer = await call(
        http, "POST", f"{server.url}/api/auth/login", None, {"login": login, "password": "password123"}
    )
    assert status == 200, answer
    return answer["token"]


async def test_the_bag_reaches_viewers_on_the_room_socket_and_the_pinned_product_is_in_it(server, http):
    world = await server.seed(stock=5)
    [(_, token)] = await guests(http, server.url, 1)
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    anchor = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    try:
        snapshot = await viewer.event("snapshot")
        assert snapshot["data"]["bag"] == []
        await anchor.ok("card.pin", {"product_id": world.product_id})
        updated = await viewer.event("bag.updated")
        assert [p["product_id"] for p in updated["data"]["products"]] == [world.product_id]
        reply = await anchor.send("bag.remove", {"product_id": world.product_id})
        assert reply["error"]["code"] == "not_found"  # pinned: it stays in the bag
        await anchor.ok("card.unpin")
        await anchor.ok("bag.remove", {"product_id": world.product_id})
        await viewer.wait(lambda m: m.get("type") == "bag.updated" and m["data"]["products"] == [])
        reply = await viewer.send("bag.add", {"product_id": world.product_id})
        assert reply["error"]["code"] == "forbidden"
        moderator = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["moderator"]))
        reply = await moderator.send("bag.add", {"product_id": world.product_id})
        assert reply["error"]["code"] == "forbidden"
        await moderator.close()
    finally:
        await viewer.close()
        await anchor.close()


async def test_orders_name_the_product_and_variant_bought_wherever_they_are_shown(server, http):
    world = await server.seed(stock=5)
    large = await add_variant(server, world, code="TEA-1KG", name="1 kg", price_minor=4000, stock=5)
    await put_in_bag(http, server, world)
    [(_, token)] = await guests(http, server.url, 1)
    named = {"product": "Green tea", "sku_name": "1 kg", "quantity": 2}
    buyer = await RoomClient.connect(server.room_ws(world.room_id, token))
    operator = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["operator"]))
    try:
        await buyer.event("snapshot")
        await operator.event("snapshot")
        placed = await buyer.ok("order.place", {"sku_id": large, "quantity": 2, "idempotency_key": new_key()})
        order_id = placed["order"]["order_id"]
        assert {key: placed["order"][key] for key in named} == named
        status, started = await start_paying(http, server.url, order_id, token)
        assert status == 200, started
        status, paid = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", token)
        assert status == 200 and {key: paid["order"][key] for key in named} == named
        updated = await buyer.event("order.updated", order_id=order_id, status="paid")
        feed = await operator.event("order.feed", order_id=order_id, status="paid")
    finally:
        await buyer.close()
        await operator.close()
    assert {key: updated["data"][key] for key in named} == named
    assert {key: feed["data"][key] for key in named} == named
    _, mine = await call(http, "GET", f"{server.url}/api/orders", token)
    _, one = await call(http, "GET", f"{server.url}/api/orders/{order_id}", token)
    _, room = await call(
        http, "GET", f"{server.url}/api/rooms/{world.room_id}/orders", world.tokens["operator"]
    )
    for order in (mine["orders"][0], one["order"], room["orders"][0]):
        assert {key: order[key] for key in named} == named, order


async def _free_stock(database_url: str, sku_id: int) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT on_hand - reserved AS free, stock_version FROM skus WHERE id = $1", sku_id
        )
    finally:
        await conn.close()
    return row["free"], row["stock_version"]


async def test_viewers_hear_a_bag_skus_free_stock_coalesced_and_the_last_word_is_the_truth(
    server, http, database_url
):
    world = await server.seed(stock=40)
    await put_in_bag(http, server, world)
    [(_, viewer_token), *buyers] = await guests(http, server.url, 13)
    viewer = await RoomClient.connect(server.room_ws(world.room_id, viewer_token))
    try:
        await viewer.event("snapshot")
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(
            *(
                buy(http, server, world, token, world.sku_id, quantity=1 + i % 3)
                for i, (_, token) in enumerate(buyers)
            )
        )
        assert all(status == 200 for status, _ in answers), answers
        status, body = await call(
            http,
            "POST",
            f"{server.url}/api/skus/{world.sku_id}/stock",
            world.tokens["operator"],
            {"delta": 7},
        )
        assert status == 200, body
        free, version = await _free_stock(database_url, world.sku_id)
        assert free == 40 - sum(1 + i % 3 for i in range(12)) + 7
        last = await viewer.wait(
            lambda m: m.get("type") == "sku.stock" and m["data"]["version"] == version, timeout=30
        )
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        await viewer.close()
    assert last["data"] == {
        "sku_id": world.sku_id,
        "product_id": world.product_id,
        "available": free,
        "version": version,
    }
    heard = [m["data"] for m in viewer.events("sku.stock")]
    versions = [data["version"] for data in heard]
    assert versions == sorted(set(versions)) and heard[-1] == last["data"]
    # 13 changes (12 purchases and a restock), at most 4 events a second
    assert len(heard) <= elapsed * 4 + 1, (len(heard), elapsed)
