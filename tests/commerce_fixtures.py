"""Fixtures for order tests: an HTTP client, and a seeded shop with a running flash sale and
guest buyers on a real server.

tests/conftest.py makes them available to every test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from commerce_client import guests, start_sale
from helpers import LiveServer, World


@dataclass
class SaleFloor:
    """One shop (seed data), one running sale in its room, and guest buyers (user id, token)."""

    server: LiveServer
    world: World
    sale: dict[str, Any]
    buyers: list[tuple[int, str]]

    @property
    def sale_id(self) -> int:
        return self.sale["sale_id"]


OpenSale = Callable[..., Awaitable[SaleFloor]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with room for a storm of concurrent requests."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        yield session


@pytest.fixture
def sale_floor(http: aiohttp.ClientSession) -> OpenSale:
    """`await sale_floor(server, stock=…, allocated=…, per_user_limit=…, price=…, buyers=…)`."""

    async def open_sale(
        server: LiveServer,
        *,
        stock: int,
        allocated: int,
        per_user_limit: int = 1,
        price: int = 990,
        buyers: int = 0,
    ) -> SaleFloor:
        world = await server.seed(stock=stock)
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
        return SaleFloor(server, world, sale, await guests(http, server.url, buyers) if buyers else [])

    return open_sale
