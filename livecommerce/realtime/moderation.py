"""Moderation: delete chat, mute, ban, slow mode and blocked words; every action audited.

Bans are per account. A banned guest is also recognised by a keyed hash of the address it
was connected from, so a new guest identity from that address cannot rejoin the room; signed-in
accounts are never refused for their address alone (people share networks).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, audit, authorize
from livecommerce.db.models import ChatMessage, Role, Room, RoomRestriction, User
from livecommerce.errors import AppError
from livecommerce.http import Id, parse
from livecommerce.realtime import event_types
from livecommerce.realtime.connection import Connection
from livecommerce.realtime.hub import CommandContext, Hub
from livecommerce.timestamps import iso

MUTE = "mute"
BAN = "ban"
MAX_RESTRICTION_SECONDS = 365 * 24 * 3600


class DeleteMessage(BaseModel):
    message_id: Id


class Restrict(BaseModel):
    user_id: Id
    seconds: int | None = Field(None, ge=1, le=MAX_RESTRICTION_SECONDS)
    reason: str = Field("", max_length=300)


class Lift(BaseModel):
    user_id: Id


class SlowMode(BaseModel):
    seconds: int = Field(ge=0, le=3600)


class BlockedWords(BaseModel):
    words: list[str] = Field(max_length=500)


def _active(now: datetime) -> Any:
    return or_(RoomRestriction.expires_at.is_(None), RoomRestriction.expires_at > now)


async def muted_until(session: AsyncSession, room_id: int, user_id: int) -> datetime | None:
    """When the user's mute ends (datetime.max for an open-ended mute), or None if not muted."""
    now = datetime.now(UTC)
    row = (
        await session.execute(
            select(RoomRestriction.expires_at)
            .where(RoomRestriction.room_id == room_id, RoomRestriction.user_id == user_id)
            .where(RoomRestriction.kind == MUTE, _active(now))
        )
    ).first()
    if row is None:
        return None
    return row.expires_at or datetime.max.replace(tzinfo=UTC)


async def _target(session: AsyncSession, ctx: CommandContext, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise AppError("not_found", f"user {user_id} does not exist")
    if user.role is not Role.VIEWER:
        raise AppError("forbidden", "staff accounts cannot be muted or banned")
    return user


def clean_blocked_words(words: list[str]) -> list[str]:
    """Trimmed, case-folded, de-duplicated, each 1..64 characters; order kept."""
    cleaned: list[str] = []
    for word in words:
        folded = " ".join(word.split()).casefold()
        if not folded or len(folded) > 64:
            raise AppError("invalid", "words: each entry must be 1 to 64 characters")
        if folded not in cleaned:
            cleaned.append(folded)
    return cleaned


class Moderation:
    """The moderation commands, the ban check at the door and the caller's own standing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def check_not_banned(self, room_id: int, principal: Principal, client_hash: str) -> None:
        """Raise `banned` if the account, or (for a guest) its address, is banned from the room."""
        who = RoomRestriction.user_id == principal.user_id
        if principal.is_guest:
            who = or_(who, RoomRestriction.client_hash == client_hash)
        async with self.sessions() as session:
            banned = await session.scalar(
                select(RoomRestriction.user_id)
                .where(RoomRestriction.room_id == room_id, RoomRestriction.kind == BAN)
                .where(_active(datetime.now(UTC)), who)
                .limit(1)
            )
        if banned is not None:
            raise AppError("banned", "you are banned from this room")

    async def remember_banned_address(self, room_id: int, conn: Connection) -> None:
        """Attach the address hash of a banned guest's connection to its ban (on whichever node
        held the connection)."""
        if not conn.principal.is_guest:
            return
        async with self.sessions.begin() as session:
            await session.execute(
                update(RoomRestriction)
                .where(RoomRestriction.room_id == room_id, RoomRestriction.user_id == conn.user_id)
                .where(RoomRestriction.kind == BAN, RoomRestriction.client_hash.is_(None))
                .values(client_hash=conn.client_hash)
            )

    async def _restrict(self, ctx: CommandContext, kind: str, body: Restrict) -> datetime | None:
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=body.seconds) if body.seconds else None
        async with self.sessions.begin() as session:
            await _target(session, ctx, body.user_id)
            values = {
                "room_id": ctx.room_id,
                "user_id": body.user_id,
                "kind": kind,
                "expires_at": expires,
                "reason": body.reason,
                "created_by": ctx.principal.user_id,
                "created_at": now,
            }
            statement = insert(RoomRestriction).values(**values)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["room_id", "user_id", "kind"],
                    set_={
                        k: statement.excluded[k] for k in ("expires_at", "reason", "created_by", "created_at")
                    },
                )
            )
            await audit(
                session,
                ctx.principal,
                f"user.{kind}",
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="user",
                target_id=body.user_id,
                details={"seconds": body.seconds, "reason": body.reason},
            )
        return expires

    async def _lift(self, ctx: CommandContext, kind: str, body: Lift) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(RoomRestriction).where(
                    RoomRestriction.room_id == ctx.room_id,
                    RoomRestriction.user_id == body.user_id,
                    RoomRestriction.kind == kind,
                )
            )
            await audit(
                session,
                ctx.principal,
                f"user.un{kind}",
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="user",
                target_id=body.user_id,
            )
        return bool(result.rowcount)

    async def delete_message(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "chat.delete", ctx.merchant_id)
        body = parse(DeleteMessage, data)
        async with self.sessions.begin() as session:
            deleted = await session.scalar(
                update(ChatMessage)
                .where(ChatMessage.id == body.message_id, ChatMessage.room_id == ctx.room_id)
                .where(ChatMessage.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC), deleted_by=ctx.principal.user_id)
                .returning(ChatMessage.id)
            )
            if deleted is None:
                raise AppError("not_found", f"no message {body.message_id} to delete in this room")
            await audit(
                session,
                ctx.principal,
                "chat.delete",
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="chat_message",
                target_id=body.message_id,
            )
        await ctx.hub.publish(
            ctx.room_id, event_types.CHAT_DELETED, {"message_id": body.message_id}, kind="moderation"
        )
        return {"message_id": body.message_id}

    async def mute(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "user.mute", ctx.merchant_id)
        body = parse(Restrict, data)
        until = await self._restrict(ctx, MUTE, body)
        event = {"user_id": body.user_id, "until": iso(until)}
        await ctx.hub.publish(ctx.room_id, event_types.USER_MUTED, event, kind="moderation")
        return event

    async def unmute(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "user.mute", ctx.merchant_id)
        body = parse(Lift, data)
        lifted = await self._lift(ctx, MUTE, body)
        await ctx.hub.publish(
            ctx.room_id, event_types.USER_UNMUTED, {"user_id": body.user_id}, kind="moderation"
        )
        return {"user_id": body.user_id, "lifted": lifted}

    async def ban(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        """Ban and disconnect: every node closes the user's sockets when it sees `user.banned`."""
        authorize(ctx.principal, "user.ban", ctx.merchant_id)
        body = parse(Restrict, data)
        until = await self._restrict(ctx, BAN, body)
        event = {"user_id": body.user_id, "until": iso(until)}
        await ctx.hub.publish(ctx.room_id, event_types.USER_BANNED, event, kind="moderation")
        return event

    async def unban(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "user.ban", ctx.merchant_id)
        body = parse(Lift, data)
        lifted = await self._lift(ctx, BAN, body)
        await ctx.hub.publish(
            ctx.room_id, event_types.USER_UNBANNED, {"user_id": body.user_id}, kind="moderation"
        )
        return {"user_id": body.user_id, "lifted": lifted}

    async def _update_room(
        self, ctx: CommandContext, action: str, details: dict[str, Any], **values: Any
    ) -> int:
        async with self.sessions.begin() as session:
            slow_mode = await session.scalar(
                update(Room).where(Room.id == ctx.room_id).values(**values).returning(Room.slow_mode_seconds)
            )
            await audit(
                session,
                ctx.principal,
                action,
                merchant_id=ctx.merchant_id,
                room_id=ctx.room_id,
                target_type="room",
                target_id=ctx.room_id,
                details=details,
            )
        ctx.hub.forget_room_info(ctx.room_id)
        # every other node drops its cached room settings when it sees this event
        await ctx.hub.publish(
            ctx.room_id, event_types.ROOM_SETTINGS, {"slow_mode_seconds": slow_mode}, kind="moderation"
        )
        return int(slow_mode or 0)

    async def set_slow_mode(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "room.moderate", ctx.merchant_id)
        body = parse(SlowMode, data)
        seconds = await self._update_room(
            ctx, "room.slow_mode", {"seconds": body.seconds}, slow_mode_seconds=body.seconds
        )
        return {"slow_mode_seconds": seconds}

    async def set_blocked_words(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        authorize(ctx.principal, "room.moderate", ctx.merchant_id)
        words = clean_blocked_words(parse(BlockedWords, data).words)
        await self._update_room(ctx, "room.blocked_words", {"words": words}, blocked_words=words)
        return {"blocked_words": words}

    async def you(self, room_id: int, principal: Principal) -> dict[str, Any]:
        """The caller's own standing in the room, for the snapshot."""
        async with self.sessions() as session:
            until = await muted_until(session, room_id, principal.user_id)
        return {
            "user_id": principal.user_id,
            "display_name": principal.display_name,
            "role": principal.role.value,
            "is_guest": principal.is_guest,
            "muted_until": iso(until),
        }


def register(hub: Hub, sessions: async_sessionmaker[AsyncSession]) -> Moderation:
    moderation = Moderation(sessions)
    hub.command("chat.delete", moderation.delete_message)
    hub.command("user.mute", moderation.mute)
    hub.command("user.unmute", moderation.unmute)
    hub.command("user.ban", moderation.ban)
    hub.command("user.unban", moderation.unban)
    hub.command("room.slow_mode", moderation.set_slow_mode)
    hub.command("room.blocked_words", moderation.set_blocked_words)
    hub.snapshot_provider("you", moderation.you)
    hub.on_local_ban(moderation.remember_banned_address)
    return moderation
