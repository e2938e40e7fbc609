"""Fixtures for order tests: an HTTP client, a seeded shop with a running flash sale and guest
buyers on a real server, and the real server with Stripe pointed at a local Stripe.

tests/conftest.py makes them available to every test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from commerce_client import guests, start_sale
from helpers import LiveServer, World, start_server
from stripe_fake import WEBHOOK_SECRET, FakeStripe

from livecommerce.config import Settings


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


@pytest.fixture
async def stripe() -> AsyncIterator[FakeStripe]:
    fake = await FakeStripe(WEBHOOK_SECRET).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def shop(settings: Settings, stripe: FakeStripe) -> AsyncIterator[LiveServer]:
    """The real server with Stripe configured and pointed at the local Stripe."""
    live = await start_server(
        settings.model_copy(
            update={
                "stripe_secret_key": "sk_test_local",
                "stripe_webhook_secret": WEBHOOK_SECRET,
                "stripe_publishable_key": "pk_test_local",
                "stripe_api_base": stripe.url,
            }
        )
    )
    yield live
    await live.runner.cleanup()
