"""Sign-in (taking over the guest who signs in), guest tokens, sign-out, the caller's identity,
disabling accounts, and stream keys."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce import accounts
from livecommerce.auth import COOKIE_NAME, Principal, audit, authorize
from livecommerce.config import Settings
from livecommerce.db.models import Role
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, optional_principal, principal, read_json
from livecommerce.http.identity import Identity, bearer_token
from livecommerce.http.throttle import Throttle

# sign-in attempts allowed per address, as a multiple of those allowed per login
ADDRESS_FACTOR = 10


class LoginBody(BaseModel):
    login: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=500)


class SignUpBody(BaseModel):
    login: str = Field(min_length=1, max_length=254, description="an email address or a phone number")
    password: str = Field(min_length=1, max_length=500)
    display_name: str | None = Field(None, max_length=200)


class GuestBody(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)


class StreamKeyBody(BaseModel):
    label: str = Field("", max_length=100)


def _bearer_guest(request: web.Request) -> Principal | None:
    """The guest named by the request's `Authorization` header, if its token still holds."""
    if bearer_token(request) is None:
        return None
    try:
        who = optional_principal(request)
    except AppError:
        return None  # an expired or retired guest: there is nothing left to take over
    return who if who is not None and who.is_guest else None


class AccountsApi:
    """Sign-in, accounts and stream keys, with the identity, database and throttles they use."""

    def __init__(
        self, identity: Identity, sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self.identity = identity
        self.tokens = identity.tokens
        self.sessions = sessions
        self.settings = settings
        per_login = settings.login_attempts_per_minute
        self.sign_in_per_login = Throttle("sign-in attempts for this login", per_login)
        self.sign_in_per_address = Throttle("sign-in attempts from this address", per_login * ADDRESS_FACTOR)
        self.guests_per_address = Throttle("new guests from this address", settings.guests_per_minute)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/auth/login", self.login),
            web.post("/api/auth/guest", self.guest),
            web.post("/api/auth/signup", self.sign_up),
            web.post("/api/auth/logout", self.logout),
            web.post("/api/users/{user_id}/disable", self.disable_user),
            web.get("/api/me", self.me),
            web.post("/api/rooms/{room_id}/stream-keys", self.create_stream_key),
        ]

    def _session_response(self, who: Principal, **more: object) -> web.Response:
        tokens = self.tokens
        token = tokens.issue(who)
        response = json_response(
            {
                **more,
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
        """Sign in. Called with a guest's token in the `Authorization` header (never from the
        cookie alone, which a shared browser may still hold), the account takes over the guest's
        orders, saved details and draw entries, and the guest's tokens stop working."""
        body = await read_json(request, LoginBody)
        # per login (guessing one account's password) and per address (trying many accounts)
        self.sign_in_per_address.check(request.remote)
        self.sign_in_per_login.check(body.login.strip().lower())
        guest = _bearer_guest(request)
        taken_over = None
        async with self.sessions.begin() as session:
            user = await accounts.sign_in(session, body.login, body.password)
            if guest is not None and await accounts.take_over_guest(session, guest.user_id, user):
                taken_over = guest.user_id
            principal_ = accounts.principal_of(user)
        if taken_over is not None:
            self.identity.revocations.forget(taken_over)
        return self._session_response(principal_, took_over_guest=taken_over)

    async def guest(self, request: web.Request) -> web.Response:
        body = await read_json(request, GuestBody)
        self.guests_per_address.check(request.remote)
        async with self.sessions.begin() as session:
            user = await accounts.create_guest(session, body.display_name)
        return self._session_response(accounts.principal_of(user))

    async def sign_up(self, request: web.Request) -> web.Response:
        """A viewer account (login: email or phone). Called with a guest's token, the guest
        becomes the account and keeps its orders and saved details."""
        body = await read_json(request, SignUpBody)
        self.sign_in_per_address.check(request.remote)
        who = optional_principal(request)
        if who is not None and not who.is_guest:
            raise AppError("already_registered", "you are signed in to an account already")
        async with self.sessions.begin() as session:
            user = await accounts.sign_up(
                session,
                login=body.login,
                password=body.password,
                display_name=body.display_name,
                guest_id=who.user_id if who is not None else None,
            )
            principal_ = accounts.principal_of(user)
        if who is not None:
            self.identity.revocations.forget(who.user_id)
        return self._session_response(principal_)

    async def logout(self, request: web.Request) -> web.Response:
        """Sign out everywhere: every token issued to the caller so far is refused from now on."""
        try:
            who = optional_principal(request)
        except AppError:
            who = None  # an expired or revoked token: nothing left to revoke
        if who is not None:
            async with self.sessions.begin() as session:
                await accounts.revoke_tokens(session, who.user_id)
            self.identity.revocations.forget(who.user_id)
        response = json_response({"ok": True})
        response.del_cookie(COOKIE_NAME)
        return response

    async def disable_user(self, request: web.Request) -> web.Response:
        """Disable an account at once: no more sign-ins, and its tokens are refused."""
        who = principal(request)
        user_id = int_param(request, "user_id")
        async with self.sessions.begin() as session:
            user = await accounts.find_user(session, user_id)
            if user is None:
                raise AppError("not_found", "no such user")
            authorize(who, "user.manage", user.merchant_id)
            if user.merchant_id is None and who.role is not Role.ADMIN:
                raise AppError("forbidden", "only an admin may disable an account outside a merchant")
            if user.id == who.user_id:
                raise AppError("invalid", "you cannot disable your own account")
            await accounts.disable_user(session, user_id)
            await audit(
                session,
                who,
                "user.disable",
                merchant_id=user.merchant_id,
                target_type="user",
                target_id=user_id,
            )
        self.identity.revocations.forget(user_id)
        return json_response({"id": user_id, "disabled": True})

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
            room = await accounts.find_room(session, room_id)
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
