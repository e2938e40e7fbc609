"""Fixtures: one real PostgreSQL per test session, a fresh database per test, a real server."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from commerce_fixtures import http, sale_floor, shop, stripe  # noqa: F401  (shared fixtures of the order tests)
from helpers import LiveServer, start_server

from livecommerce.config import Settings
from livecommerce.db.migrate import upgrade

TEMPLATE = "lc_template"


class Postgres:
    """Admin access to the test server: DATABASE_URL's server, or an embedded one."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    def url(self, database: str) -> str:
        base = self.admin_dsn.rsplit("/", 1)[0]
        return base.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{database}"

    def dsn(self, database: str) -> str:
        return self.admin_dsn.rsplit("/", 1)[0] + f"/{database}"

    @contextlib.asynccontextmanager
    async def database(self, prefix: str, template: str | None = None) -> AsyncIterator[str]:
        """A new database for one test, dropped afterwards: empty, or cloned from a template."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        clone = f" TEMPLATE {template}" if template else ""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}{clone}")
        finally:
            await conn.close()
        try:
            yield self.url(name)
        finally:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            finally:
                await conn.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    external = os.environ.get("DATABASE_URL")
    if external:
        pg = Postgres(external.replace("postgresql+asyncpg://", "postgresql://", 1))
        server = None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from livecommerce.db.embedded import EmbeddedPostgres
        # outside pytest's base temp: another pytest run of the same user makes that folder
        # private (0700), which would lock PostgreSQL's system user out of its own data
        pgdata = Path(tempfile.mkdtemp(prefix="livecommerce-test-pg-"))
        server = EmbeddedPostgres(pgdata, durable=False)
        server.start()
        pg = Postgres(server.dsn("postgres"))
    import asyncio

    async def make_template() -> None:
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()

    asyncio.run(make_template())
    upgrade(pg.url(TEMPLATE))
    yield pg
    if server is not None:
        server.stop()
        shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture
async def database_url(postgres: Postgres) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, cloned from the template in milliseconds."""
    async with postgres.database("t", TEMPLATE) as url:
        yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-" + "x" * 32,
        port=0,
        rtc_host_addresses=["127.0.0.1"],
        ice_servers=[],
        draw_min_watch_seconds=0,
        db_pool_size=10,
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    live = await start_server(settings)
    yield live
    await live.runner.cleanup()
