"""The room's viewer count over time: the highest count seen per room and minute.

Every node writes the room total it sees on each presence round; `GREATEST` keeps the highest
of those writes, so several nodes (or several rounds in one minute) agree on one row.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db.models import RoomViewerSample


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


async def record_viewers(
    sessions: async_sessionmaker[AsyncSession], counts: dict[int, int], at: datetime | None = None
) -> None:
    """Upsert one sample per room with viewers (rooms at zero are left out)."""
    bucket = minute_of(at or datetime.now(UTC))
    rows = [{"room_id": room, "bucket": bucket, "viewers": n} for room, n in sorted(counts.items()) if n > 0]
    if not rows:
        return
    statement = insert(RoomViewerSample).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[RoomViewerSample.room_id, RoomViewerSample.bucket],
        set_={"viewers": func.greatest(RoomViewerSample.viewers, statement.excluded.viewers)},
    )
    async with sessions.begin() as session:
        await session.execute(statement)
