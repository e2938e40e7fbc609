"""Sign-in, guest tokens, the caller's identity, and stream keys for a room."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from livecommerce import accounts
from livecommerce.appkeys import SESSION_FACTORY, SETTINGS, TOKENS
from livecommerce.auth import COOKIE_NAME, Principal, audit, authorize
from livecommerce.db.models import Room
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal, read_json

routes = web.RouteTableDef()


class LoginBody(BaseModel):
    login: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class GuestBody(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)


class StreamKeyBody(BaseModel):
    label: str = Field("", max_length=100)


def _session_response(request: web.Request, who: Principal) -> web.Response:
    tokens = request.app[TOKENS]
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
        secure=request.app[SETTINGS].base_url.startswith("https://"),
    )
    return response


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginBody)
    async with request.app[SESSION_FACTORY]() as session:
        user = await accounts.sign_in(session, body.login, body.password)
    return _session_response(request, accounts.principal_of(user))


@routes.post("/api/auth/guest")
async def guest(request: web.Request) -> web.Response:
    body = await read_json(request, GuestBody)
    async with request.app[SESSION_FACTORY].begin() as session:
        user = await accounts.create_guest(session, body.display_name)
    return _session_response(request, accounts.principal_of(user))


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    response = json_response({"ok": True})
    response.del_cookie(COOKIE_NAME)
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
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


@routes.post("/api/rooms/{room_id}/stream-keys")
async def create_stream_key(request: web.Request) -> web.Response:
    """A new key for OBS or a phone encoder; the plaintext is returned once."""
    room_id = int_param(request, "room_id")
    body = await read_json(request, StreamKeyBody)
    who = principal(request)
    async with request.app[SESSION_FACTORY].begin() as session:
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
