"""Recording every HLS live: the same CMAF segments the live serves, written to the recordings
store as they complete, a VOD playlist when the live ends, a `recordings` row that says how far
it got, clips (marked moments), and the retention that deletes old recordings.

A store that fails (disk full, unwritable, unreachable) stops that recording, never the live:
the error goes to the log, to `livecommerce_recording_failures_total` and to the row (the
console shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit
from livecommerce.db.models import Clip, Recording, Room
from livecommerce.errors import AppError
from livecommerce.media import llhls
from livecommerce.media.hls import HlsOutput
from livecommerce.media.storage import Storage, StorageError
from livecommerce.timestamps import iso

log = logging.getLogger(__name__)

SESSION_WAIT_SECONDS = 30.0  # the stream session row is written when media starts; wait for its id
RETENTION_INTERVAL = 3600.0  # seconds between two sweeps for expired recordings
PLAYLIST = "index.m3u8"
INIT = "init.mp4"


class RecordingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "livecommerce_recording_failures",
            "Recordings stopped because the store failed (the live went on)",
            registry=registry,
        )
        self.active = Gauge("livecommerce_recordings_active", "Recordings being written", registry=registry)
        self.bytes = Counter("livecommerce_recording_bytes", "Bytes written to recordings", registry=registry)


def recording_view(row: Recording) -> dict[str, Any]:
    return {
        "stream_session_id": row.stream_session_id,
        "room_id": row.room_id,
        "state": row.state,
        "error": row.error or None,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "duration_seconds": round(row.duration_seconds, 3),
        "size_bytes": row.size_bytes,
        "segments": row.segments,
        "playlist_url": f"/recordings/{row.stream_session_id}/{PLAYLIST}"
        if row.state == "complete"
        else None,
        "replay_url": f"/replay/{row.stream_session_id}",
    }


def clip_view(clip: Clip) -> dict[str, Any]:
    return {
        "id": clip.id,
        "stream_session_id": clip.stream_session_id,
        "offset_seconds": round(clip.offset_seconds, 3),
        "title": clip.title,
        "url": f"/replay/{clip.stream_session_id}?t={clip.offset_seconds:.1f}",
        "created_at": iso(clip.created_at),
    }


class Recordings:
    """This node's recorder and the recordings' rows, files and clips."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        layout: llhls.Layout,
        registry: CollectorRegistry,
        retention_days: float,
    ) -> None:
        self.sessions = sessions
        self.storage = storage
        self.layout = layout
        self.metrics = RecordingMetrics(registry)
        self.retention_days = retention_days
        self.recorders: set[Recorder] = set()

    def attach(self, output: HlsOutput) -> None:
        """Record this live (called for every new HLS output)."""
        recorder = Recorder(self, output)
        self.recorders.add(recorder)
        output.listeners.append(recorder)

    async def close(self) -> None:
        """Let recordings of lives that just ended finish their playlist."""
        await asyncio.gather(*(r.task for r in list(self.recorders)), return_exceptions=True)

    # rows

    async def _started(self, session_id: int, room_id: int, started_at: datetime) -> None:
        async with self.sessions.begin() as session:
            session.add(Recording(stream_session_id=session_id, room_id=room_id, started_at=started_at))

    async def _update(self, session_id: int, **values: Any) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Recording).where(Recording.stream_session_id == session_id).values(**values)
            )

    async def find(self, session_id: int) -> tuple[Recording, int] | None:
        """The recording and its room's merchant."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Recording, Room.merchant_id)
                    .join(Room, Room.id == Recording.room_id)
                    .where(Recording.stream_session_id == session_id)
                )
            ).first()
        return (row[0], row[1]) if row is not None else None

    async def for_room(self, room_id: int) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Recording).where(Recording.room_id == room_id).order_by(Recording.started_at.desc())
            )
            return [recording_view(row) for row in rows]

    async def delete(self, session_id: int, who: Principal | None = None) -> None:
        """Delete the files, then the row (and its clips): a failed delete leaves it listed.
        `who` deleted it (None: the retention sweep)."""
        if any(r.session_id == session_id for r in self.recorders):
            raise AppError("conflict", "this recording is still being written; delete it after the live")
        try:
            await self.storage.delete_prefix(str(session_id))
        except StorageError as exc:
            raise AppError("unavailable", f"the recordings store failed: {exc}") from None
        async with self.sessions.begin() as session:
            room_id = await session.scalar(
                delete(Recording)
                .where(Recording.stream_session_id == session_id)
                .returning(Recording.room_id)
            )
            if who is not None:
                await audit(
                    session,
                    who,
                    "recording.delete",
                    room_id=room_id,
                    target_type="recording",
                    target_id=session_id,
                )

    async def read(self, session_id: int, name: str) -> bytes | None:
        try:
            return await self.storage.get(f"{session_id}/{name}")
        except StorageError as exc:
            raise AppError("unavailable", f"the recordings store failed: {exc}") from None

    # clips

    async def add_clip(
        self, recording: Recording, offset: float | None, title: str, who: Principal
    ) -> dict[str, Any]:
        """Mark a moment: at `offset` seconds into the recording, or now when the live is on."""
        if offset is None:
            offset = (datetime.now(UTC) - recording.started_at).total_seconds()
        limit = recording.duration_seconds if recording.state != "recording" else None
        if offset < 0 or (limit is not None and offset > limit):
            raise AppError("invalid", f"the moment must be within the recording (0 to {limit or 0:.1f} s)")
        async with self.sessions.begin() as session:
            clip = Clip(
                stream_session_id=recording.stream_session_id,
                offset_seconds=offset,
                title=title,
                created_by=who.user_id,
            )
            session.add(clip)
            await session.flush()
            await session.refresh(clip)
            await audit(
                session, who, "clip.create", room_id=recording.room_id, target_type="clip", target_id=clip.id
            )
            return clip_view(clip)

    async def clips(self, session_id: int) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Clip).where(Clip.stream_session_id == session_id).order_by(Clip.offset_seconds)
            )
            return [clip_view(clip) for clip in rows]

    # retention

    async def expire(self, now: datetime) -> list[int]:
        """Delete the recordings that ended more than the retention period ago; return their ids.
        One left `recording` by a server that stopped abruptly counts from its start (one still
        being written is never deleted)."""
        if self.retention_days <= 0:
            return []
        before = now - timedelta(days=self.retention_days)
        async with self.sessions() as session:
            expired = list(
                await session.scalars(
                    select(Recording.stream_session_id).where(
                        func.coalesce(Recording.ended_at, Recording.started_at) < before
                    )
                )
            )
        deleted = []
        for session_id in expired:
            try:
                await self.delete(session_id)
                deleted.append(session_id)
            except AppError as exc:
                log.error("could not delete expired recording %s: %s", session_id, exc.message)
        return deleted

    async def keep_expiring(self) -> None:
        """The periodic retention sweep (runs until cancelled)."""
        while True:
            try:
                deleted = await self.expire(datetime.now(UTC))
                if deleted:
                    log.info("deleted %d expired recordings", len(deleted))
            except Exception:
                log.exception("the recordings' retention sweep failed")
            await asyncio.sleep(RETENTION_INTERVAL)


class Recorder:
    """Writes one live's segments to the store as they complete, and its VOD playlist at the end."""

    def __init__(self, recordings: Recordings, output: HlsOutput) -> None:
        self.recordings = recordings
        self.output = output
        self.session_id: int | None = None
        self._queue: asyncio.Queue[llhls.Segment | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())
        self.task.add_done_callback(lambda _: recordings.recorders.discard(self))

    def segment(self, output: HlsOutput, segment: llhls.Segment) -> None:
        self._queue.put_nowait(segment)

    def ended(self, output: HlsOutput) -> None:
        self._queue.put_nowait(None)

    async def _run(self) -> None:
        output, recordings = self.output, self.recordings
        session_id = await self._session_id()
        if session_id is None:
            return
        self.session_id = session_id
        # The broadcast starts with its first frame, the segments with the first keyframe that
        # carries the picture size: a recording starts with its first segment, and a live that
        # ends before one has nothing to record.
        segment = await self._queue.get()
        if segment is None:
            return
        started_at = output.started_at
        assert started_at is not None  # segments come only once the muxer has started
        listed: list[tuple[int, float]] = []
        size = 0
        recordings.metrics.active.inc()
        try:
            await recordings._started(session_id, output.room_id, started_at)
            while segment is not None:
                if not listed:
                    assert output.init is not None
                    await recordings.storage.put(f"{session_id}/{INIT}", output.init)
                    size += len(output.init)
                data = segment.data
                await recordings.storage.put(f"{session_id}/{llhls.segment_name(segment.msn)}", data)
                listed.append((segment.msn, segment.duration))
                size += len(data)
                recordings.metrics.bytes.inc(len(data))
                await recordings._update(session_id, **_totals(listed, size))
                segment = await self._queue.get()
            playlist = llhls.vod_playlist(recordings.layout, listed, started_at).encode()
            await recordings.storage.put(f"{session_id}/{PLAYLIST}", playlist)
            await recordings._update(
                session_id,
                state="complete",
                ended_at=datetime.now(UTC),
                **_totals(listed, size + len(playlist)),
            )
        except Exception as exc:
            # the store failed (or anything else did): this recording stops, the live goes on
            if isinstance(exc, StorageError):
                log.error(
                    "room %s: recording of stream session %s stopped (the live goes on): %s",
                    output.room_id,
                    session_id,
                    exc,
                )
            else:
                log.exception("room %s: recording of stream session %s failed", output.room_id, session_id)
            recordings.metrics.failures.inc()
            if self in output.listeners:
                output.listeners.remove(self)
            error = str(exc) if isinstance(exc, StorageError) else "internal error (see the server log)"
            with contextlib.suppress(Exception):
                await recordings._update(
                    session_id,
                    state="failed",
                    error=error,
                    ended_at=datetime.now(UTC),
                    **_totals(listed, size),
                )
        finally:
            recordings.metrics.active.dec()

    async def _session_id(self) -> int | None:
        """The stream session's id, once its row exists (None: the live ended without one)."""
        stream = self.output.stream
        deadline = asyncio.get_running_loop().time() + SESSION_WAIT_SECONDS
        while stream.session_id is None:
            if stream.state == "ended" or asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.1)
        return stream.session_id


def _totals(listed: list[tuple[int, float]], size: int) -> dict[str, Any]:
    return {
        "duration_seconds": sum(duration for _, duration in listed),
        "size_bytes": size,
        "segments": len(listed),
    }
