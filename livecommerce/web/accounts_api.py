"""Sign-in, guest tokens, sign-out, the caller's identity, disabling accounts, and stream keys."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from livecommerce import accounts
from livecommerce.appkeys import SESSION_FACTORY, SETTINGS, TOKENS
from livecommerce.auth import COOKIE_NAME, Principal, audit, authorize
from livecommerce.db.models import Role, Room, User
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, optional_principal, principal, read_json
from livecommerce.http.identity import REVOCATIONS
from livecommerce.http.throttle import Throttle

routes = web.RouteTableDef()
SIGN_IN_PER_LOGIN = web.AppKey("sign_in_per_login", Throttle)
SIGN_IN_PER_ADDRESS = web.AppKey("sign_in_per_address", Throttle)
GUESTS_PER_ADDRESS = web.AppKey("guests_per_address", Throttle)
ADDRESS_FACTOR = 10


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    per_login = settings.login_attempts_per_minute
    app[SIGN_IN_PER_LOGIN] = Throttle("sign-in attempts for this login", per_login)
    app[SIGN_IN_PER_ADDRESS] = Throttle("sign-in attempts from this address", per_login * ADDRESS_FACTOR)
    app[GUESTS_PER_ADDRESS] = Throttle("new guests from this address", settings.guests_per_minute)
    app.add_routes(routes)


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
    # per login (guessing one account's password) and per address (trying many accounts)
    request.app[SIGN_IN_PER_ADDRESS].check(request.remote)
    request.app[SIGN_IN_PER_LOGIN].check(body.login.strip().lower())
    async with request.app[SESSION_FACTORY]() as session:
        user = await accounts.sign_in(session, body.login, body.password)
    return _session_response(request, accounts.principal_of(user))


@routes.post("/api/auth/guest")
async def guest(request: web.Request) -> web.Response:
    body = await read_json(request, GuestBody)
    request.app[GUESTS_PER_ADDRESS].check(request.remote)
    async with request.app[SESSION_FACTORY].begin() as session:
        user = await accounts.create_guest(session, body.display_name)
    return _session_response(request, accounts.principal_of(user))


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    """Sign out everywhere: every token issued to the caller so far is refused from now on."""
    try:
        who = optional_principal(request)
    except AppError:
        who = None  # an expired or revoked token: nothing left to revoke
    if who is not None:
        async with request.app[SESSION_FACTORY].begin() as session:
            await accounts.revoke_tokens(session, who.user_id)
        request.app[REVOCATIONS].forget(who.user_id)
    response = json_response({"ok": True})
    response.del_cookie(COOKIE_NAME)
    return response


@routes.post("/api/users/{user_id}/disable")
async def disable_user(request: web.Request) -> web.Response:
    """Disable an account at once: no more sign-ins, and its tokens are refused."""
    who = principal(request)
    user_id = int_param(request, "user_id")
    async with request.app[SESSION_FACTORY].begin() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError("not_found", "no such user")
        authorize(who, "user.manage", user.merchant_id)
        if user.merchant_id is None and who.role is not Role.ADMIN:
            raise AppError("forbidden", "only an admin may disable an account outside a merchant")
        if user.id == who.user_id:
            raise AppError("invalid", "you cannot disable your own account")
        await accounts.disable_user(session, user_id)
        await audit(
            session, who, "user.disable", merchant_id=user.merchant_id, target_type="user", target_id=user_id
        )
    request.app[REVOCATIONS].forget(user_id)
    return json_response({"id": user_id, "disabled": True})


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
