"""A guest signing in to an existing account hands it the guest's orders, saved details and
draw entries in one transaction, over HTTP on real PostgreSQL; the guest's token stops working."""

from __future__ import annotations

import aiohttp
import asyncpg
from commerce_client import BUYER_DETAILS, call, dsn_of, start_sale
from room_client import RoomClient
from test_draws import SHIPPING, keyword_draw

from livecommerce.draws.verification import verify

LOGIN = {"login": "ann@example.com", "password": "password123"}
ACCOUNT_DETAILS = {**BUYER_DETAILS, "name": "Ann Lee", "city": "Shanghai"}
GUEST_DETAILS = {**BUYER_DETAILS, "name": "Ann (guest)", "city": "Hangzhou"}


async def fetch(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def buy(http, server, token: str, sale_id: int, key: str) -> dict:
    status, answer = await call(
        http,
        "POST",
        f"{server.url}/api/orders",
        token,
        {"sale_id": sale_id, "quantity": 1, "idempotency_key": key},
    )
    assert status == 200, answer
    return answer["order"]


async def draw(http, server, world, **spec) -> dict:
    status, started = await call(
        http,
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/draws",
        world.tokens["anchor"],
        keyword_draw(**spec),
    )
    assert status == 201, started
    return started


async def test_signing_in_with_a_guest_token_takes_over_its_orders_details_and_draw_entries(
    server, database_url
):
    world = await server.seed(stock=10)
    async with aiohttp.ClientSession() as http:
        status, signed_up = await call(http, "POST", f"{server.url}/api/auth/signup", None, LOGIN)
        assert status == 200, signed_up
        account_id, account_token = signed_up["user"]["id"], signed_up["token"]
        await call(http, "PUT", f"{server.url}/api/me/details", account_token, {"details": ACCOUNT_DETAILS})
        guest_id, guest_token = await server.guest("Ann on the phone")

        # both bought in the sale, each with the same purchase key (one browser's, say)
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=5,
            per_user_limit=2,
            price=990,
        )
        own = await buy(http, server, account_token, sale["sale_id"], "same-key-1")
        bought = await buy(http, server, guest_token, sale["sale_id"], "same-key-1")
        status, _ = await call(
            http,
            "PUT",
            f"{server.url}/api/orders/{bought['order_id']}/shipping",
            guest_token,
            {"details": GUEST_DETAILS, "remember": True},
        )
        assert status == 200
        await call(http, "POST", f"{server.url}/api/orders/{bought['order_id']}/pay", guest_token)
        status, paid = await call(
            http, "POST", f"{server.url}/api/orders/{bought['order_id']}/test-confirm", guest_token
        )
        assert status == 200 and paid["order"]["status"] == "paid", paid

        # the guest won a draw that closed before signing in; both entered the open one
        guest_room = await RoomClient.connect(server.room_ws(world.room_id, guest_token))
        account_room = await RoomClient.connect(server.room_ws(world.room_id, account_token))
        try:
            won = await draw(http, server, world, prize_text="", prize_sku_id=world.sku_id)
            await guest_room.ok("draw.enter", {})
            await call(http, "POST", f"{server.url}/api/draws/{won['id']}/close", world.tokens["anchor"])
            running = await draw(http, server, world)
            await guest_room.ok("draw.enter", {})
            await account_room.ok("draw.enter", {})
        finally:
            await guest_room.close()
            await account_room.close()

        status, signed_in = await call(http, "POST", f"{server.url}/api/auth/login", guest_token, LOGIN)
        assert status == 200, signed_in
        assert signed_in["took_over_guest"] == guest_id and signed_in["user"]["id"] == account_id
        token = signed_in["token"]

        # the guest's token no longer works
        status, answer = await call(http, "GET", f"{server.url}/api/me", guest_token)
        assert (status, answer["error"]["code"]) == (401, "invalid_token")
        # the orders are the account's, each with its own key
        status, answer = await call(http, "GET", f"{server.url}/api/orders", token)
        assert sorted(o["order_id"] for o in answer["orders"]) == sorted(
            [own["order_id"], bought["order_id"]]
        )
        keys = await fetch(
            database_url, "SELECT id, idempotency_key FROM orders WHERE user_id = $1 ORDER BY id", account_id
        )
        assert {row["id"]: row["idempotency_key"] for row in keys} == {
            own["order_id"]: "same-key-1",
            bought["order_id"]: f"guest-{guest_id}:same-key-1",
        }
        held = await fetch(
            database_url, "SELECT user_id, units FROM sale_buyers WHERE sale_id = $1", sale["sale_id"]
        )
        assert [(row["user_id"], row["units"]) for row in held] == [(account_id, 2)]
        # the account's own saved details win
        status, answer = await call(http, "GET", f"{server.url}/api/me/details", token)
        assert answer["details"]["city"] == "Shanghai"
        # one entry per draw: the account's; the closed draw's published entrants stay as they were
        entries = await fetch(
            database_url, "SELECT user_id FROM draw_entries WHERE draw_id = $1", running["id"]
        )
        assert [row["user_id"] for row in entries] == [account_id]
        status, record = await call(http, "GET", f"{server.url}/api/draws/{won['id']}")
        assert record["entrants"] == [guest_id] and verify(record).ok
        # and the guest's prize is the account's to claim
        status, claimed = await call(
            http, "POST", f"{server.url}/api/draws/{won['id']}/claim", token, {"shipping": SHIPPING}
        )
        assert status == 200, claimed
        prize = await fetch(
            database_url, "SELECT user_id FROM orders WHERE id = $1", claimed["order"]["order_id"]
        )
        assert prize[0]["user_id"] == account_id

        # signing in again with the retired guest's token just signs in
        status, again = await call(http, "POST", f"{server.url}/api/auth/login", guest_token, LOGIN)
        assert status == 200 and again["took_over_guest"] is None


async def test_the_guest_s_details_go_to_an_account_without_any_and_a_cookie_alone_takes_nothing(
    server, database_url
):
    await server.seed()
    async with aiohttp.ClientSession() as http:
        status, _ = await call(http, "POST", f"{server.url}/api/auth/signup", None, LOGIN)
        assert status == 200
        guest_id, guest_token = await server.guest("Ann")
        await call(http, "PUT", f"{server.url}/api/me/details", guest_token, {"details": GUEST_DETAILS})

        # the session cookie a shared browser still holds is not the guest asking
        async with aiohttp.ClientSession(cookies={"lc_session": guest_token}) as browser:
            status, signed_in = await call(browser, "POST", f"{server.url}/api/auth/login", None, LOGIN)
        assert status == 200 and signed_in["took_over_guest"] is None
        status, _ = await call(http, "GET", f"{server.url}/api/me", guest_token)
        assert status == 200

        # a wrong password takes nothing over
        status, answer = await call(
            http, "POST", f"{server.url}/api/auth/login", guest_token, {**LOGIN, "password": "wrong-password"}
        )
        assert (status, answer["error"]["code"]) == (401, "invalid_credentials")
        status, _ = await call(http, "GET", f"{server.url}/api/me", guest_token)
        assert status == 200

        status, signed_in = await call(http, "POST", f"{server.url}/api/auth/login", guest_token, LOGIN)
        assert signed_in["took_over_guest"] == guest_id
        status, answer = await call(http, "GET", f"{server.url}/api/me/details", signed_in["token"])
        assert answer["details"]["name"] == "Ann (guest)"
        assert await fetch(database_url, "SELECT 1 FROM buyer_details WHERE user_id = $1", guest_id) == []
        retired = await fetch(database_url, "SELECT merged_into_id FROM users WHERE id = $1", guest_id)
        assert retired[0]["merged_into_id"] == signed_in["user"]["id"]
