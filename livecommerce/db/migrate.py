"""Apply alembic migrations programmatically (at start, and for `livecommerce migrate`)."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config

from livecommerce.resources import migrations_folder


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    """Alembic's env runs its own event loop, so run it on a worker thread."""
    await asyncio.to_thread(upgrade, url, revision)
