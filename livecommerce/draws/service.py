"""The prize-draw service: start, enter, close (exactly once, on any node, after restarts),
publish, and claim. The algorithm itself lives in `verification`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import BigInteger, String, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize
from livecommerce.commerce import prizes
from livecommerce.db.models import (
    Draw,
    DrawEntry,
    DrawRule,
    DrawState,
    DrawWinner,
    Role,
    Room,
    Sku,
    StreamSession,
    User,
)
from livecommerce.draws import verification
from livecommerce.errors import AppError
from livecommerce.http import Id
from livecommerce.realtime import event_types, protocol
from livecommerce.timestamps import iso

if TYPE_CHECKING:
    from livecommerce.realtime.hub import Hub

log = logging.getLogger(__name__)

KIND = "draws"

POLL_SECONDS = 5.0
"""How often a node looks for draws that other nodes opened (its own wake it at once)."""
KEYWORD_CACHE_SECONDS = 1.0
"""Chat is checked against a room's open keyword draw cached this long, not one query a line;
a draw opened on another node is seen within this time, less than it takes anyone to read the
announcement and type the keyword."""
WATCHERS_CACHE_SECONDS = 1.0
"""Entries check watch time against the room's watchers fetched at most this long ago (a user
missing from that map is looked up afresh), not one cluster-wide presence read per entry."""
ENTRANTS_EVERY_SECONDS = 0.5
"""A running draw's entrant count goes to the room at most this often from each node, however
many entries arrive: an entry storm becomes a couple of `draw.entrants` events a second."""
LATEST_ENTRANTS = 5
"""How many of the newest entrants' names each `draw.entrants` event carries."""


class StartDraw(BaseModel):
    """What an anchor or operator sets when starting a draw."""

    prize_text: str = Field("", max_length=200)
    prize_sku_id: Id | None = None
    winners_count: int = Field(1, ge=1, le=100)
    rule: DrawRule
    keyword: str | None = Field(None, min_length=1, max_length=100)
    duration_seconds: float = Field(ge=1, le=24 * 3600)
    min_watch_seconds: float | None = Field(None, ge=0, le=24 * 3600)
    claim_seconds: int = Field(3 * 24 * 3600, ge=1, le=90 * 24 * 3600)

    model_config = {"extra": "forbid", "str_strip_whitespace": True}

    @model_validator(mode="after")
    def _consistent(self) -> StartDraw:
        if self.rule is DrawRule.KEYWORD and not self.keyword:
            raise ValueError("a keyword draw needs a keyword")
        if self.rule is not DrawRule.KEYWORD and self.keyword:
            raise ValueError("only a keyword draw takes a keyword")
        if not self.prize_text and self.prize_sku_id is None:
            raise ValueError("give prize_text, prize_sku_id, or both")
        return self


def mentions_keyword(text: str, keyword: str) -> bool:
    """True when the chat line contains the keyword as a whole word, ignoring case."""
    return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, re.IGNORECASE) is not None


def draw_view(
    draw: Draw,
    winners: Iterable[tuple[DrawWinner, str]] = (),
    *,
    entrants: list[int] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A draw as everyone may see it: the seed only once closed; entrants only when asked."""
    closed = draw.state is DrawState.CLOSED
    now = now or datetime.now(UTC)
    view: dict[str, Any] = {
        "id": draw.id,
        "room_id": draw.room_id,
        "state": draw.state.value,
        "prize": {"text": draw.prize_text, "sku_id": draw.prize_sku_id},
        "winners_count": draw.winners_count,
        "rule": draw.rule.value,
        "keyword": draw.keyword,
        "min_watch_seconds": draw.min_watch_seconds,
        "opens_at": iso(draw.opens_at),
        "closes_at": iso(draw.closes_at),
        "remaining_seconds": max(0.0, (draw.closes_at - now).total_seconds()) if not closed else 0.0,
        "closed_at": iso(draw.closed_at),
        "claim_deadline": iso(draw.claim_deadline) if draw.prize_sku_id is not None else None,
        "algorithm": verification.ALGORITHM,
        "seed_commitment": draw.seed_commitment,
        "seed": draw.seed if closed else None,
        "entrants_hash": draw.entrants_hash,
        "entrant_count": draw.entrant_count,
        "winners": [
            {
                "rank": winner.rank,
                "user_id": winner.user_id,
                "display_name": name,
                "claimed": winner.claim_order_id is not None,
            }
            for winner, name in winners
        ],
    }
    if entrants is not None:
        view["entrants"] = entrants
    return view


async def entrants_so_far(session: AsyncSession, draw_id: int) -> dict[str, Any]:
    """A running draw's entrant count and its newest entrants' names, newest first."""
    count = await session.scalar(select(func.count()).where(DrawEntry.draw_id == draw_id))
    latest = await session.scalars(
        select(DrawEntry.display_name)
        .where(DrawEntry.draw_id == draw_id)
        .order_by(DrawEntry.entered_at.desc(), DrawEntry.user_id.desc())
        .limit(LATEST_ENTRANTS)
    )
    return {"draw_id": draw_id, "entrant_count": count or 0, "latest": list(latest.all())}


async def _winners(session: AsyncSession, draw_id: int) -> list[tuple[DrawWinner, str]]:
    rows = await session.execute(
        select(DrawWinner, DrawEntry.display_name)
        .join(
            DrawEntry, (DrawEntry.draw_id == DrawWinner.draw_id) & (DrawEntry.user_id == DrawWinner.user_id)
        )
        .where(DrawWinner.draw_id == draw_id)
        .order_by(DrawWinner.rank)
    )
    return [(winner, name) for winner, name in rows.all()]


async def draw_record(session: AsyncSession, draw_id: int) -> dict[str, Any]:
    """The full published record of one draw, with the entrant list once it has closed."""
    draw = await session.get(Draw, draw_id)
    if draw is None:
        raise AppError("not_found", "no such draw")
    entrants = None
    if draw.state is DrawState.CLOSED:
        entrants = list(
            (
                await session.scalars(
                    select(DrawEntry.user_id).where(DrawEntry.draw_id == draw_id).order_by(DrawEntry.user_id)
                )
            ).all()
        )
    return draw_view(draw, await _winners(session, draw_id), entrants=entrants)


def _require_open(draw: Draw) -> None:
    if draw.state is not DrawState.OPEN or draw.closes_at <= datetime.now(UTC):
        raise AppError("draw_closed", "the draw has closed")


class DrawService:
    """Draws for every room; one per process, closing due draws for the whole cluster."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        default_min_watch: float,
        *,
        stock_changed: Callable[[int], None],
    ) -> None:
        """`stock_changed(sku_id)`: a SKU's free stock changed (a prize taken from it); the shop's
        `sku.stock` event tells the rooms that offer it."""
        self._sessions = sessions
        self._hub = hub
        self._stock_changed = stock_changed
        self._default_min_watch = default_min_watch
        self._wake = asyncio.Event()
        self._keyword_cache: dict[int, tuple[float, tuple[int, str] | None]] = {}
        self._watchers_cache: dict[int, tuple[float, dict[int, float]]] = {}
        self._unannounced_entries: dict[int, int] = {}  # draw id -> room id
        self._entries_arrived = asyncio.Event()

    # starting

    async def start(self, who: Principal, room_id: int, spec: StartDraw) -> dict[str, Any]:
        async with self._sessions.begin() as session:
            room = await session.get(Room, room_id)
            if room is None:
                raise AppError("not_found", "no such room")
            authorize(who, "draw.manage", room.merchant_id)
            prize_text = spec.prize_text
            if spec.prize_sku_id is not None:
                sku = await session.get(Sku, spec.prize_sku_id)
                if sku is None or sku.merchant_id != room.merchant_id:
                    raise AppError("invalid", "prize_sku_id is not a SKU of this shop")
                prize_text = prize_text or sku.name
            now = datetime.now(UTC)
            closes_at = now + timedelta(seconds=spec.duration_seconds)
            seed = verification.new_seed()
            draw = Draw(
                room_id=room_id,
                merchant_id=room.merchant_id,
                created_by=who.user_id,
                prize_text=prize_text,
                prize_sku_id=spec.prize_sku_id,
                winners_count=spec.winners_count,
                rule=spec.rule,
                keyword=spec.keyword,
                min_watch_seconds=(
                    spec.min_watch_seconds if spec.min_watch_seconds is not None else self._default_min_watch
                ),
                seed=seed,
                seed_commitment=verification.commitment(seed),
                opens_at=now,
                closes_at=closes_at,
                claim_deadline=closes_at + timedelta(seconds=spec.claim_seconds),
            )
            session.add(draw)
            try:
                await session.flush()
            except IntegrityError:
                raise AppError("conflict", "a draw is already running in this room") from None
            await audit(
                session,
                who,
                "draw.start",
                merchant_id=room.merchant_id,
                room_id=room_id,
                target_type="draw",
                target_id=draw.id,
                details={"commitment": draw.seed_commitment, "rule": spec.rule.value},
            )
        self._keyword_cache.pop(room_id, None)
        self._wake.set()
        view = draw_view(draw, now=now)
        await self._hub.publish(room_id, event_types.DRAW_STARTED, view)
        return view

    # entering

    async def enter(self, who: Principal, room_id: int, draw_id: int | None = None) -> dict[str, Any]:
        """A tap on "enter": one entry per account, for the room's running keyword draw."""
        authorize(who, "draw.enter")
        async with self._sessions() as session:
            query = select(Draw).where(Draw.room_id == room_id)
            query = query.where(Draw.id == draw_id) if draw_id else query.where(Draw.state == DrawState.OPEN)
            draw = await session.scalar(query.order_by(Draw.id.desc()).limit(1))
        if draw is None:
            if draw_id:
                raise AppError("not_found", "no such draw in this room")
            raise AppError("draw_closed", "no draw is running in this room")
        _require_open(draw)
        if draw.rule is not DrawRule.KEYWORD:
            raise AppError(
                "invalid",
                "everyone watching at the close is entered"
                if draw.rule is DrawRule.WATCHING
                else "everyone who ordered during this stream is entered",
            )
        return await self._add_entry(who, draw)

    async def on_chat(self, room_id: int, who: Principal, text: str) -> None:
        """A chat line with the keyword of the room's running draw is an entry."""
        open_draw = await self._open_keyword_draw(room_id)
        if open_draw is None or not mentions_keyword(text, open_draw[1]):
            return
        async with self._sessions() as session:
            draw = await session.get(Draw, open_draw[0])
        if draw is None:
            return
        with contextlib.suppress(AppError):
            await self._add_entry(who, draw)

    async def _open_keyword_draw(self, room_id: int) -> tuple[int, str] | None:
        cached = self._keyword_cache.get(room_id)
        if cached and time.monotonic() - cached[0] < KEYWORD_CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(Draw.id, Draw.keyword).where(
                        Draw.room_id == room_id, Draw.state == DrawState.OPEN, Draw.rule == DrawRule.KEYWORD
                    )
                )
            ).one_or_none()
        found = (row.id, row.keyword) if row else None
        self._keyword_cache[room_id] = (time.monotonic(), found)
        return found

    async def _joined_at(self, room_id: int, user_id: int) -> float | None:
        cached = self._watchers_cache.get(room_id)
        if (
            cached is None
            or time.monotonic() - cached[0] > WATCHERS_CACHE_SECONDS
            or user_id not in cached[1]
        ):
            cached = (time.monotonic(), await self._hub.watchers(room_id))
            self._watchers_cache[room_id] = cached
        return cached[1].get(user_id)

    async def _check_watch_time(self, who: Principal, draw: Draw) -> None:
        if draw.min_watch_seconds <= 0:
            return
        joined = await self._joined_at(draw.room_id, who.user_id)
        if joined is None:
            raise AppError("not_eligible", "join the room to enter its draw")
        waited = time.time() - joined
        if waited < draw.min_watch_seconds:
            raise AppError(
                "not_eligible",
                f"watch for {draw.min_watch_seconds:g} s before entering",
                details={"retry_after_seconds": round(draw.min_watch_seconds - waited, 1)},
            )

    async def _add_entry(self, who: Principal, draw: Draw) -> dict[str, Any]:
        if who.is_staff:
            raise AppError("not_eligible", "staff do not enter draws")
        _require_open(draw)
        await self._check_watch_time(who, draw)
        # FOR SHARE on the draw row: the close's UPDATE waits for entries in flight, and an
        # entry that arrives after the close sees the closed state and inserts nothing.
        still_open = (
            select(Draw.id, literal(who.user_id, BigInteger), literal(who.display_name, String))
            .where(Draw.id == draw.id, Draw.state == DrawState.OPEN, Draw.closes_at > func.now())
            .with_for_update(read=True)
        )
        statement = (
            insert(DrawEntry)
            .from_select(["draw_id", "user_id", "display_name"], still_open)
            .on_conflict_do_nothing()
            .returning(DrawEntry.user_id)
        )
        async with self._sessions.begin() as session:
            entered = (await session.execute(statement)).scalar_one_or_none()
            if entered is None:
                duplicate = await session.get(DrawEntry, (draw.id, who.user_id))
        if entered is None:
            if duplicate is not None:
                raise AppError("already_entered", "you are already in this draw")
            raise AppError("draw_closed", "the draw has closed")
        data = {"draw_id": draw.id, "entered": True}
        await self._hub.publish(draw.room_id, event_types.DRAW_ENTERED, data, to_user=who.user_id)
        self._unannounced_entries[draw.id] = draw.room_id
        self._entries_arrived.set()
        return data

    async def run_announcer(self) -> None:
        """For as long as the app runs: send each room whose draw gained entries on this node
        the count so far and the newest names, at most every `ENTRANTS_EVERY_SECONDS`. The
        numbers come from the database, so every node announces the cluster-wide count. Its
        own task, so an entry storm's queries never hold up the room tick."""
        while True:
            await self._entries_arrived.wait()
            self._entries_arrived.clear()
            pending, self._unannounced_entries = self._unannounced_entries, {}
            try:
                async with self._sessions() as session:
                    for draw_id, room_id in pending.items():
                        data = await entrants_so_far(session, draw_id)
                        payload = protocol.unsequenced_event(event_types.DRAW_ENTRANTS, data, time.time())
                        await self._hub.broker.publish_volatile(
                            room_id, KIND, event_types.DRAW_ENTRANTS, payload
                        )
            except Exception:
                log.exception("announcing draw entrants failed; the next entry tries again")
            await asyncio.sleep(ENTRANTS_EVERY_SECONDS)

    # closing

    async def close(self, draw_id: int, *, by: Principal | None = None) -> dict[str, Any]:
        """Close a draw now (staff) and publish the result; `draw_closed` if already closed."""
        if by is not None:
            async with self._sessions() as session:
                draw = await session.get(Draw, draw_id)
            if draw is None:
                raise AppError("not_found", "no such draw")
            authorize(by, "draw.manage", draw.merchant_id)
        view = await self._close(draw_id, by=by, due_only=False)
        if view is None:
            raise AppError("draw_closed", "the draw has already closed")
        return view

    async def close_due(self) -> int:
        """Close every open draw whose time is up; safe to run on every node at once."""
        async with self._sessions() as session:
            due = (
                await session.scalars(
                    select(Draw.id).where(Draw.state == DrawState.OPEN, Draw.closes_at <= func.now())
                )
            ).all()
        closed = 0
        for draw_id in due:
            if await self._close(draw_id, by=None, due_only=True) is not None:
                closed += 1
        return closed

    async def close_with_live(self, room_id: int, stream_ended: dict[str, Any]) -> None:
        """A `stream.ended` observer: the live's end closes the room's open keyword draws, whose
        entries come from the live's chat."""
        if not event_types.ends_the_live(stream_ended):
            return
        async with self._sessions() as session:
            open_draws = (
                await session.scalars(
                    select(Draw.id).where(
                        Draw.room_id == room_id, Draw.state == DrawState.OPEN, Draw.rule == DrawRule.KEYWORD
                    )
                )
            ).all()
        for draw_id in open_draws:
            await self._close(draw_id, by=None, due_only=False)

    async def _close(self, draw_id: int, *, by: Principal | None, due_only: bool) -> dict[str, Any] | None:
        claim = (
            update(Draw)
            .where(Draw.id == draw_id, Draw.state == DrawState.OPEN)
            .values(state=DrawState.CLOSED, closed_at=func.now())
            .returning(Draw)
        )
        if due_only:
            claim = claim.where(Draw.closes_at <= func.now())
        async with self._sessions.begin() as session:
            draw = (await session.execute(claim)).scalar_one_or_none()
            if draw is None:
                return None  # another node (or an earlier call) closed it
            if draw.rule is DrawRule.WATCHING:
                await self._enter_watchers(session, draw)
            elif draw.rule is DrawRule.ORDERED:
                await self._enter_buyers(session, draw)
            rows = (
                await session.execute(
                    select(DrawEntry.user_id, DrawEntry.display_name)
                    .where(DrawEntry.draw_id == draw.id)
                    .order_by(DrawEntry.user_id)
                )
            ).all()
            names = {user_id: name for user_id, name in rows}
            entrants = verification.canonical_entrants(names)
            draw.entrants_hash = verification.entrants_hash(entrants)
            draw.entrant_count = len(entrants)
            picked = verification.select_winners(draw.seed, entrants, draw.winners_count)
            winners = [
                DrawWinner(draw_id=draw.id, rank=rank, user_id=uid) for rank, uid in enumerate(picked, 1)
            ]
            session.add_all(winners)
            if by is not None:
                await audit(
                    session,
                    by,
                    "draw.close",
                    merchant_id=draw.merchant_id,
                    room_id=draw.room_id,
                    target_type="draw",
                    target_id=draw.id,
                    details={"early": True},
                )
        self._keyword_cache.pop(draw.room_id, None)
        self._watchers_cache.pop(draw.room_id, None)
        view = draw_view(draw, [(w, names[w.user_id]) for w in winners])
        await self._hub.publish(draw.room_id, event_types.DRAW_CLOSED, view)
        for winner in winners:
            await self._hub.publish(
                draw.room_id,
                event_types.DRAW_WON,
                {
                    "draw_id": draw.id,
                    "rank": winner.rank,
                    "prize": view["prize"],
                    "claim_deadline": view["claim_deadline"],
                },
                to_user=winner.user_id,
            )
        log.info("draw %s closed: %d entrants, winners %s", draw.id, len(entrants), picked)
        return view

    async def _add_entrants(self, session: AsyncSession, draw: Draw, user_ids: Iterable[int]) -> None:
        """Enter these users (viewers only, display names from their accounts)."""
        ids = list(user_ids)
        if not ids:
            return
        eligible = select(literal(draw.id, BigInteger), User.id, User.display_name).where(
            User.id.in_(ids), User.role == Role.VIEWER
        )
        await session.execute(
            insert(DrawEntry)
            .from_select(["draw_id", "user_id", "display_name"], eligible)
            .on_conflict_do_nothing()
        )

    async def _enter_watchers(self, session: AsyncSession, draw: Draw) -> None:
        assert draw.closed_at is not None
        cutoff = draw.closed_at.timestamp() - draw.min_watch_seconds
        watchers = await self._hub.watchers(draw.room_id)
        await self._add_entrants(session, draw, (uid for uid, joined in watchers.items() if joined <= cutoff))

    async def _enter_buyers(self, session: AsyncSession, draw: Draw) -> None:
        """Buyers since the stream that was live when the draw opened began (or the draw opened)."""
        stream_start = await session.scalar(
            select(func.max(StreamSession.started_at)).where(
                StreamSession.room_id == draw.room_id, StreamSession.started_at <= draw.opens_at
            )
        )
        buyers = await prizes.buyers_since(session, draw.room_id, stream_start or draw.opens_at)
        await self._add_entrants(session, draw, buyers)

    # the scheduler

    async def run_closer(self) -> None:
        """Close draws when due, for as long as the app runs; on start-up this closes overdue ones."""
        while True:
            try:
                await self.close_due()
                async with self._sessions() as session:
                    next_close = await session.scalar(
                        select(func.min(Draw.closes_at)).where(Draw.state == DrawState.OPEN)
                    )
            except Exception:
                log.exception("closing due draws failed; retrying")
                next_close = None
            delay = POLL_SECONDS
            if next_close is not None:
                delay = min(POLL_SECONDS, max(0.0, (next_close - datetime.now(UTC)).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    # reading

    async def record(self, draw_id: int) -> dict[str, Any]:
        async with self._sessions() as session:
            return await draw_record(session, draw_id)

    async def history(self, room_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The room's draws, newest first, with what is needed to verify each."""
        async with self._sessions() as session:
            draws = (
                await session.scalars(
                    select(Draw).where(Draw.room_id == room_id).order_by(Draw.id.desc()).limit(limit)
                )
            ).all()
            return [draw_view(draw, await _winners(session, draw.id)) for draw in draws]

    async def snapshot(self, room_id: int, who: Principal | None) -> dict[str, Any] | None:
        """The running draw for a joining viewer, and whether they are in it."""
        async with self._sessions() as session:
            draw = await session.scalar(
                select(Draw).where(Draw.room_id == room_id, Draw.state == DrawState.OPEN)
            )
            if draw is None:
                return None
            entered = who is not None and await session.get(DrawEntry, (draw.id, who.user_id)) is not None
            so_far = await entrants_so_far(session, draw.id)
        return {
            **draw_view(draw),
            "entered": entered,
            "entrant_count": so_far["entrant_count"],
            "latest_entrants": so_far["latest"],
        }

    # claiming

    async def claim(self, who: Principal, draw_id: int, shipping: prizes.Shipping) -> dict[str, Any]:
        """A winner claims a SKU prize: one zero-price order per draw and rank, however often asked."""
        async with self._sessions.begin() as session:
            draw = await session.get(Draw, draw_id)
            if draw is None:
                raise AppError("not_found", "no such draw")
            # the caller's own win, or one of a guest that signed in to the caller's account
            # after the draw closed (its published entrants name the guest)
            claimants = select(User.id).where((User.id == who.user_id) | (User.merged_into_id == who.user_id))
            winner = await session.scalar(
                select(DrawWinner)
                .where(DrawWinner.draw_id == draw_id, DrawWinner.user_id.in_(claimants))
                .order_by(DrawWinner.rank)
                .limit(1)
                .with_for_update()
            )
            if winner is None:
                raise AppError("forbidden", "only a winner of this draw can claim its prize")
            if draw.prize_sku_id is None:
                raise AppError("invalid", "this prize is not shipped from stock; the shop will contact you")
            now = datetime.now(UTC)
            if winner.claim_order_id is None and draw.claim_deadline and now > draw.claim_deadline:
                raise AppError("claim_expired", "the time to claim this prize has passed")
            order = await prizes.create_prize_order(
                session,
                draw_id=draw_id,
                rank=winner.rank,
                user_id=who.user_id,
                room_id=draw.room_id,
                sku_id=draw.prize_sku_id,
                shipping=shipping,
                now=now,
            )
            took_stock = winner.claim_order_id is None
            if took_stock:
                winner.claim_order_id = order.id
                winner.claimed_at = now
        if took_stock:
            self._stock_changed(draw.prize_sku_id)
        return {"draw_id": draw_id, "rank": winner.rank, "order": prizes.order_summary(order)}
