"""Test support for the commerce plane: HTTP calls as buyers and operators, and the stock ledger
read straight from PostgreSQL to check that every unit is accounted for."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, json=body, headers=headers) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


BUYER_DETAILS = {
    "name": "Wang Fang",
    "phone": "+86 139 0000 1234",
    "line1": "12 Wenyi Road",
    "city": "Hangzhou",
    "postal_code": "310012",
    "country": "CN",
}
"""Where a test buyer's order goes: an order is paid only with the buyer's details on it."""


async def give_details(http: aiohttp.ClientSession, base_url: str, order_id: int, token: str) -> None:
    status, body = await call(
        http, "PUT", f"{base_url}/api/orders/{order_id}/shipping", token, {"details": BUYER_DETAILS}
    )
    assert status == 200, body


async def start_paying(
    http: aiohttp.ClientSession, base_url: str, order_id: int, token: str
) -> tuple[int, Any]:
    """The buyer gives their details and starts paying, as the watch page does: the answer to `pay`."""
    await give_details(http, base_url, order_id, token)
    return await call(http, "POST", f"{base_url}/api/orders/{order_id}/pay", token)


def new_key() -> str:
    return uuid.uuid4().hex


async def start_sale(
    http: aiohttp.ClientSession,
    base_url: str,
    operator_token: str,
    *,
    room_id: int,
    sku_id: int,
    allocated: int,
    per_user_limit: int = 1,
    price: int = 990,
    duration_s: float = 600,
    **extra: Any,
) -> dict[str, Any]:
    status, body = await call(
        http,
        "POST",
        f"{base_url}/api/sales",
        operator_token,
        {
            "room_id": room_id,
            "sku_id": sku_id,
            "sale_price_minor": price,
            "allocated": allocated,
            "per_user_limit": per_user_limit,
            "duration_s": duration_s,
            **extra,
        },
    )
    assert status == 201, body
    return body


async def guests(
    http: aiohttp.ClientSession, base_url: str, count: int, parallel: int = 20
) -> list[tuple[int, str]]:
    """Guest viewers (user id, token), created through the real sign-in endpoint."""
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> tuple[int, str]:
        async with gate:
            status, body = await call(
                http, "POST", f"{base_url}/api/auth/guest", None, {"display_name": f"Buyer {index}"}
            )
            assert status == 200, body
            return body["user"]["id"], body["token"]

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def reserve_in_sale(
    http: aiohttp.ClientSession,
    server: Any,
    world: Any,
    *,
    allocated: int = 5,
    quantity: int = 1,
    price: int = 2500,
    buyers: int = 1,
    per_user_limit: int = 5,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]:
    """A sale of the world's SKU and `buyers` guests who each reserved `quantity` units in it:
    the sale and each (order, token)."""
    sale = await start_sale(
        http,
        server.url,
        world.tokens["operator"],
        room_id=world.room_id,
        sku_id=world.sku_id,
        allocated=allocated,
        per_user_limit=per_user_limit,
        price=price,
    )
    orders = []
    for _, token in await guests(http, server.url, buyers):
        status, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            token,
            {"sale_id": sale["sale_id"], "quantity": quantity, "idempotency_key": new_key()},
        )
        assert status == 200, answer
        orders.append((answer["order"], token))
    return sale, orders


@dataclass
class Ledger:
    allocated: int
    available: int
    state: str
    taken: int
    """Units of the sale's orders that are reserved, paid, or refunded after being paid."""
    reserved_orders: int
    per_user: dict[int, int]
    """Units each buyer holds in open (reserved or paid) orders."""
    ledger_per_user: dict[int, int]
    """The sale_buyers table, which the per-viewer limit is enforced on."""
    on_hand: int
    sku_reserved: int
    answers: int


async def ledger(dsn: str, sale_id: int) -> Ledger:
    conn = await asyncpg.connect(dsn)
    try:
        sale = await conn.fetchrow(
            "SELECT allocated, available, state::text, sku_id FROM flash_sales WHERE id = $1", sale_id
        )
        taken = await conn.fetchval(
            "SELECT coalesce(sum(quantity), 0) FROM orders WHERE sale_id = $1 AND (status IN ('reserved', 'paid') OR (status = 'refunded' AND paid_at IS NOT NULL))",
            sale_id,
        )
        reserved_orders = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'reserved'", sale_id
        )
        per_user = dict(
            await conn.fetch(
                "SELECT user_id, sum(quantity) FROM orders WHERE sale_id = $1 AND status IN ('reserved', 'paid') "
                "GROUP BY user_id",
                sale_id,
            )
        )
        ledger_rows = dict(
            await conn.fetch(
                "SELECT user_id, units FROM sale_buyers WHERE sale_id = $1 AND units > 0", sale_id
            )
        )
        sku = await conn.fetchrow("SELECT on_hand, reserved FROM skus WHERE id = $1", sale["sku_id"])
        answers = await conn.fetchval("SELECT count(*) FROM order_attempts WHERE sale_id = $1", sale_id)
    finally:
        await conn.close()
    return Ledger(
        sale["allocated"],
        sale["available"],
        sale["state"],
        taken,
        reserved_orders,
        per_user,
        ledger_rows,
        sku["on_hand"],
        sku["reserved"],
        answers,
    )


def dsn_of(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
