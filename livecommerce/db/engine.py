"""One async engine per process and the session factory built on it."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def make_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": "livecommerce"}},
    )


_UNREACHABLE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether exc says PostgreSQL could not be reached or dropped the connection: an outage to
    answer as `unavailable`, not a bug. The pool replaces the lost connection by itself."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _UNREACHABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """The process's engine and its session factory: what every plane's services are built with.
    Creating it opens no connection; the pool connects on first use."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]

    @classmethod
    def create(cls, url: str, *, pool_size: int = 20) -> Database:
        engine = make_engine(url, pool_size=pool_size)
        return cls(engine, make_sessionmaker(engine))

    async def close(self) -> None:
        await self.engine.dispose()
