"""Alembic: upgrade → downgrade → upgrade works, and the models match the migrations exactly."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from livecommerce.db.migrate import downgrade, upgrade
from livecommerce.db.models import Base


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        names = {row[0] for row in rows}
    await engine.dispose()
    return names


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


async def test_upgrade_downgrade_upgrade(database_url):
    # the fixture's database is already at every head
    await asyncio.to_thread(downgrade, database_url, "base")
    assert await _tables(database_url) == {"alembic_version"}
    await asyncio.to_thread(upgrade, database_url, "heads")
    assert set(Base.metadata.tables) <= await _tables(database_url)


async def test_models_and_migrations_do_not_differ(database_url):
    assert await _diff(database_url) == []
