"""Room chat: checks (length, blocked words, rate, slow mode, mute), storage and broadcast.

Text is stored and sent raw; pages escape it where they render it. Each message carries the
sender's badge as the server knows their role, never as their display name claims it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.auth import Principal, authorize
from livecommerce.config import Settings
from livecommerce.db.models import ChatMessage, Role, User
from livecommerce.errors import AppError
from livecommerce.http import parse
from livecommerce.realtime import event_types, moderation
from livecommerce.realtime.hub import CommandContext, Hub
from livecommerce.realtime.limits import UserRateLimit

RECENT_IN_SNAPSHOT = 50


class SendChat(BaseModel):
    text: str


def clean_text(text: str, max_length: int) -> str:
    """Strip surrounding whitespace; refuse empty text and text over the limit."""
    text = text.strip()
    if not text:
        raise AppError("invalid", "text: the message is empty")
    if len(text) > max_length:
        raise AppError("invalid", f"text: at most {max_length} characters")
    return text


def blocked_word_in(text: str, blocked_words: tuple[str, ...]) -> str | None:
    """The first blocked word or phrase that appears as whole words in text, case-insensitively."""
    folded = " ".join(text.split()).casefold()
    for word in blocked_words:
        if re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", folded):
            return word
    return None


def badge_of(role: Role, merchant_id: int | None, room_merchant_id: int) -> str | None:
    """The chat badge: `anchor` for the room merchant's anchor, `staff` for every other staff
    role, None for viewers and guests (the only people who can be muted or banned)."""
    if role is Role.VIEWER:
        return None
    if role is Role.ANCHOR and merchant_id == room_merchant_id:
        return "anchor"
    return "staff"


def message_event(message: ChatMessage, badge: str | None) -> dict[str, Any]:
    return {
        "id": message.id,
        "user_id": message.user_id,
        "display_name": message.display_name,
        "badge": badge,
        "text": message.body,
        "at": message.created_at.isoformat(),
    }


class Chat:
    """The `chat.send` command and the recent-chat snapshot part."""

    def __init__(self, hub: Hub, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.hub = hub
        self.sessions = sessions
        self.max_length = settings.chat_max_length
        self.limit = UserRateLimit(
            hub.broker,
            "chat",
            settings.chat_rate_per_second,
            settings.chat_burst,
            "you are sending messages too fast",
        )

    async def send(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        principal = authorize(ctx.principal, "chat.send", ctx.merchant_id)
        text = clean_text(parse(SendChat, data).text, self.max_length)
        if blocked_word_in(text, ctx.room.blocked_words):
            raise AppError("blocked_content", "the message contains a word this room does not allow")
        await self.limit.check(principal.user_id)
        async with self.sessions.begin() as session:
            until = await moderation.muted_until(session, ctx.room_id, principal.user_id)
            if until is not None:
                raise AppError("muted", "you are muted in this room", details={"until": until.isoformat()})
            slow = ctx.room.slow_mode_seconds
            if slow and not principal.is_staff:
                if not await self.hub.broker.claim(f"slow:{ctx.room_id}:{principal.user_id}", slow):
                    raise AppError(
                        "slow_mode", f"slow mode: one message every {slow} s", details={"seconds": slow}
                    )
            message = ChatMessage(
                room_id=ctx.room_id, user_id=principal.user_id, display_name=principal.display_name, body=text
            )
            session.add(message)
            await session.flush()
            await session.refresh(message, ["created_at"])
            event = message_event(message, badge_of(principal.role, principal.merchant_id, ctx.merchant_id))
        await self.hub.publish(ctx.room_id, event_types.CHAT_MESSAGE, event, kind="chat")
        await self.hub.chat_accepted(ctx.room_id, principal, text)
        return {"message_id": event["id"]}

    async def recent(self, room_id: int, principal: Principal) -> list[dict[str, Any]]:
        room_merchant_id = (await self.hub.room_info(room_id)).merchant_id
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(ChatMessage, User.role, User.merchant_id)
                    .join(User, User.id == ChatMessage.user_id)
                    .where(ChatMessage.room_id == room_id, ChatMessage.deleted_at.is_(None))
                    .order_by(ChatMessage.id.desc())
                    .limit(RECENT_IN_SNAPSHOT)
                )
            ).all()
        return [
            message_event(message, badge_of(role, merchant_id, room_merchant_id))
            for message, role, merchant_id in reversed(rows)
        ]


def register(hub: Hub, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    chat = Chat(hub, settings, sessions)
    hub.command("chat.send", chat.send)
    hub.snapshot_provider("chat", chat.recent)
