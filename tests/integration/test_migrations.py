"""Alembic: an empty database goes base → head → base → head, every database at head has what
the code needs (even one created from an early 0001), and the models match the migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial

import aiohttp
import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from commerce_client import dsn_of, start_sale
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from livecommerce.db.migrate import downgrade, upgrade
from livecommerce.db.models import Base


@pytest.fixture
async def empty_database_url(postgres) -> AsyncIterator[str]:
    """A database with nothing in it (not cloned from the migrated template)."""
    async with postgres.database("e") as url:
        yield url


async def _scalars(url: str, sql: str) -> set:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = set((await connection.scalars(text(sql))).all())
    await engine.dispose()
    return names


async def _tables(url: str) -> set[str]:
    return await _scalars(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")


async def _functions(url: str) -> set[str]:
    return await _scalars(url, "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")


async def _diff(url: str) -> list:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    await engine.dispose()
    return diff


async def test_an_empty_database_upgrades_downgrades_and_upgrades_to_the_models(empty_database_url):
    url = empty_database_url
    await asyncio.to_thread(upgrade, url, "head")
    assert set(Base.metadata.tables) <= await _tables(url)
    assert await _diff(url) == []
    await asyncio.to_thread(downgrade, url, "base")
    assert await _tables(url) == {"alembic_version"}
    assert await _functions(url) == set()
    await asyncio.to_thread(upgrade, url, "head")
    assert await _diff(url) == []
    assert {"livecommerce_require", "flash_sales_bump_stock_version"} <= await _functions(url)


async def test_a_database_from_an_early_0001_gets_what_head_needs(empty_database_url):
    """0001 once lacked `livecommerce_require`; such a database reaches head with it."""
    url = empty_database_url
    await asyncio.to_thread(upgrade, url, "0001")
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute("DROP FUNCTION livecommerce_require(boolean, text)")
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, url, "head")
    assert "livecommerce_require" in await _functions(url)
    assert await _diff(url) == []


async def test_models_and_migrations_do_not_differ(database_url):
    assert await _diff(database_url) == []


async def test_a_sale_change_that_does_not_mention_the_version_still_raises_it(server, database_url):
    """The version is PostgreSQL's job: a statement that forgets it cannot make rooms drop a change."""
    world = await server.seed(stock=20)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=5,
        )
    conn = await asyncpg.connect(dsn_of(database_url))
    try:
        version = partial(
            conn.fetchval, "SELECT stock_version FROM flash_sales WHERE id = $1", sale["sale_id"]
        )
        before = await version()
        await conn.execute("UPDATE flash_sales SET available = available - 1 WHERE id = $1", sale["sale_id"])
        assert await version() == before + 1
        await conn.execute("UPDATE flash_sales SET sale_price_minor = 5 WHERE id = $1", sale["sale_id"])
        assert await version() == before + 2
        # a statement that changes nothing clients see leaves the version alone
        await conn.execute("UPDATE flash_sales SET available = available WHERE id = $1", sale["sale_id"])
        assert await version() == before + 2
    finally:
        await conn.close()
