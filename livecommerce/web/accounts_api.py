"""Sign-in, guest tokens, the caller's identity, and stream keys for a room."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce import accounts
from livecommerce.auth import COOKIE_NAME, Principal, Tokens, audit, authorize
from livecommerce.config import Settings
from livecommerce.db.models import Room
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal, read_json


class LoginBody(BaseModel):
    login: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class GuestBody(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)


class StreamKeyBody(BaseModel):
    label: str = Field("", max_length=100)


class AccountsApi:
    """Sign-in and stream keys, with the tokens and database they use."""

    def __init__(
        self, tokens: Tokens, sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self.settings = settings

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/auth/login", self.login),
            web.post("/api/auth/guest", self.guest),
            web.post("/api/auth/logout", self.logout),
            web.get("/api/me", self.me),
            web.post("/api/rooms/{room_id}/stream-keys", self.create_stream_key),
        ]

    def _session_response(self, who: Principal) -> web.Response:
        tokens = self.tokens
        token = tokens.issue(who)
        response = json_response(
            {
                "token": token,
                "expires_in": tokens.ttl(who),
                "user": {
                    "id": who.user_id,
                    "role": who.role.value,
                    "display_name": who.display_name,
                    "merchant_id": who.merchant_id,
                    "is_guest": who.is_guest,
                },
            }
        )
        response.set_cookie(
            COOKIE_NAME,
            token,
            max_age=tokens.ttl(who),
            httponly=True,
            samesite="Lax",
            secure=self.settings.base_url.startswith("https://"),
        )
        return response

    async def login(self, request: web.Request) -> web.Response:
        body = await read_json(request, LoginBody)
        async with self.sessions() as session:
            user = await accounts.sign_in(session, body.login, body.password)
        return self._session_response(accounts.principal_of(user))

    async def guest(self, request: web.Request) -> web.Response:
        body = await read_json(request, GuestBody)
        async with self.sessions.begin() as session:
            user = await accounts.create_guest(session, body.display_name)
        return self._session_response(accounts.principal_of(user))

    async def logout(self, request: web.Request) -> web.Response:
        response = json_response({"ok": True})
        response.del_cookie(COOKIE_NAME)
        return response

    async def me(self, request: web.Request) -> web.Response:
        who = principal(request)
        return json_response(
            {
                "id": who.user_id,
                "role": who.role.value,
                "display_name": who.display_name,
                "merchant_id": who.merchant_id,
                "is_guest": who.is_guest,
            }
        )

    async def create_stream_key(self, request: web.Request) -> web.Response:
        """A new key for OBS or a phone encoder; the plaintext is returned once."""
        room_id = int_param(request, "room_id")
        body = await read_json(request, StreamKeyBody)
        who = principal(request)
        async with self.sessions.begin() as session:
            room = await session.scalar(select(Room).where(Room.id == room_id))
            if room is None:
                raise AppError("not_found", "no such room")
            authorize(who, "stream_key.manage", room.merchant_id)
            row, key = await accounts.create_stream_key(
                session, room_id=room_id, created_by=who.user_id, label=body.label
            )
            await audit(
                session,
                who,
                "stream_key.create",
                merchant_id=room.merchant_id,
                room_id=room_id,
                target_type="stream_key",
                target_id=row.id,
                details={"prefix": row.key_prefix},
            )
        return json_response({"id": row.id, "stream_key": key, "prefix": row.key_prefix}, status=201)
