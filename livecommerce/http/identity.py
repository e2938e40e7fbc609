"""The caller's identity: a token from the `Authorization` header or the session cookie, its
signature, and whether it was revoked since (logout, a disabled account).

Revocation is checked against the user's token version in the database, cached per node for
`REVOCATION_CACHE_SECONDS`; a revocation made on this node is seen here at once, on other nodes
within that time. `?token=` is read only where a browser cannot send a header (the room
socket's handshake).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce import accounts
from livecommerce.auth import COOKIE_NAME, Principal, Tokens
from livecommerce.config import Settings
from livecommerce.errors import AppError

REVOCATION_CACHE_SECONDS = 2.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CALLER = web.RequestKey("caller", object)  # a Principal, the AppError its token raised, or None


class Revocations:
    """Which users' tokens are still good: their token version and disabled flag, cached briefly.

    Lookups that arrive together share one query, with at most one in flight: a crowd whose
    taps open a flash sale costs a round trip or two, not one per buyer.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl: float = REVOCATION_CACHE_SECONDS
    ) -> None:
        self.ttl = ttl
        self._sessions = sessions
        self._states: dict[int, tuple[float, tuple[int, bool] | None]] = {}
        self._waiting: dict[int, asyncio.Future[tuple[int, bool] | None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def check(self, principal: Principal) -> None:
        """Raise `invalid_token` when the principal's token was revoked or its account disabled."""
        cached = self._states.get(principal.user_id)
        if cached is not None and cached[0] >= time.monotonic():
            state = cached[1]
        else:
            state = await self._lookup(principal.user_id)
        if state is None or state[1] or state[0] != principal.token_version:
            raise AppError("invalid_token", "this session has ended; sign in again")

    def forget(self, user_id: int) -> None:
        """Drop the cached state after a change made on this node, so it counts here at once."""
        self._states.pop(user_id, None)

    def _lookup(self, user_id: int) -> asyncio.Future[tuple[int, bool] | None]:
        future = self._waiting.get(user_id)
        if future is None:
            future = self._waiting[user_id] = asyncio.get_running_loop().create_future()
            if self._reader is None:
                self._reader = asyncio.create_task(self._read_waiting(), name="token-states")
        return future

    async def _read_waiting(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let the requests already read join this query
                waiting, self._waiting = self._waiting, {}
                try:
                    async with self._sessions() as session:
                        states = await accounts.token_states(session, list(waiting))
                except Exception as exc:
                    for future in waiting.values():
                        if not future.done():
                            future.set_exception(exc)
                    continue
                now = time.monotonic()
                if len(self._states) > 100_000:
                    self._states = {k: v for k, v in self._states.items() if v[0] >= now}
                for user_id, future in waiting.items():
                    state = states.get(user_id)
                    self._states[user_id] = (now + self.ttl, state)
                    if not future.done():
                        future.set_result(state)
        finally:
            self._reader = None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    return None


def token_of(request: web.Request, *, from_query: bool = False) -> str | None:
    """The Bearer token, else (only when allowed) `?token=`, else the session cookie."""
    return (
        bearer_token(request)
        or (request.query.get("token") if from_query else None)
        or request.cookies.get(COOKIE_NAME)
    )


class Identity:
    """Who is calling: tokens checked for their signature and for revocation, and browsers'
    `Origin` checked against the origins this server trusts."""

    def __init__(
        self, settings: Settings, tokens: Tokens, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.sessions = sessions
        self.revocations = Revocations(sessions)

    def trusted_origin(self, request: web.Request) -> bool:
        """False when a browser says the request comes from a page of an origin this server does
        not trust (not its own host, PUBLIC_URL's origin or ALLOWED_ORIGINS); True without one."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin.lower()
        if origin in self.settings.trusted_origins:
            return True
        _, scheme_separator, host = origin.partition("://")
        return bool(scheme_separator) and host == request.host.lower()

    async def authenticate(self, token: str) -> Principal:
        """The principal a token names, if its signature holds and it was not revoked."""
        who = self.tokens.verify(token)
        await self.confirm(who)
        return who

    async def confirm(self, who: Principal) -> None:
        """Raise `invalid_token` if the principal's token was revoked since it was checked."""
        await self.revocations.check(who)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Resolve the caller once per request, so `principal()` can stay a plain function.

        A change sent with the session cookie from another site's page is refused: the cookie
        would act for the viewer without their knowing. A Bearer token is never sent by a
        browser on its own, so requests carrying one are not affected.
        """
        token = token_of(request)
        if (
            token
            and request.method not in SAFE_METHODS
            and bearer_token(request) is None
            and not self.trusted_origin(request)
        ):
            raise AppError("forbidden", "a page of another site may not act with this session's cookie")
        caller: Principal | AppError | None = None
        if token:
            try:
                caller = await self.authenticate(token)
            except AppError as exc:
                caller = exc
        request[_CALLER] = caller
        return await handler(request)


def _caller(request: web.Request) -> Principal | None:
    caller = request.get(_CALLER)
    if isinstance(caller, AppError):
        raise caller
    return caller


def principal(request: web.Request) -> Principal:
    """The caller, from a Bearer header or the session cookie; 401 if none."""
    who = _caller(request)
    if who is None:
        raise AppError("unauthorized", "sign in first or send a guest token")
    return who


def optional_principal(request: web.Request) -> Principal | None:
    return _caller(request)
