"""Accounts and roles in one place: password hashing, signed tokens, the permission table, audit.

- Passwords: scrypt (memory-hard KDF from the standard library), salted, parameters stored
  with the hash so they can be raised later.
- Tokens: itsdangerous-signed, timestamped payloads; the same token works as a cookie for
  pages and as `Authorization: Bearer` (or `?token=` on the room socket's URL) for the API.
  Each carries the user's token version; raising the version in the database (logout,
  disabling the account) revokes every token issued before.
- `authorize()` is the one function that decides whether a principal may do an action, and
  `audit()` records every privileged action in the same transaction as the action itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.db.models import AuditLog, Role
from livecommerce.errors import AppError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
COOKIE_NAME = "lc_session"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def hash_stream_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_stream_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a signed-in account or a guest viewer."""

    user_id: int
    role: Role
    display_name: str
    merchant_id: int | None = None
    is_guest: bool = False
    token_version: int = 0

    @property
    def is_staff(self) -> bool:
        return self.role is not Role.VIEWER


class Tokens:
    """Issue and check signed, expiring session and guest tokens."""

    def __init__(self, secret_key: str, *, session_ttl: int, guest_ttl: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="livecommerce.session")
        self.session_ttl = session_ttl
        self.guest_ttl = guest_ttl

    def issue(self, principal: Principal) -> str:
        payload = {
            "u": principal.user_id,
            "r": principal.role.value,
            "n": principal.display_name,
            "m": principal.merchant_id,
            "g": principal.is_guest,
            "v": principal.token_version,
        }
        return self._serializer.dumps(payload)

    def ttl(self, principal: Principal) -> int:
        return self.guest_ttl if principal.is_guest else self.session_ttl

    def verify(self, token: str) -> Principal:
        try:
            payload, _ = self._serializer.loads(token, max_age=self.guest_ttl, return_timestamp=True)
            is_guest = bool(payload["g"])
            if not is_guest:
                self._serializer.loads(token, max_age=self.session_ttl)
            return Principal(
                user_id=int(payload["u"]),
                role=Role(payload["r"]),
                display_name=str(payload["n"]),
                merchant_id=payload["m"],
                is_guest=is_guest,
                token_version=int(payload.get("v", 0)),
            )
        except SignatureExpired:
            raise AppError("token_expired", "the session has expired; sign in again") from None
        except (BadSignature, KeyError, ValueError, TypeError, AttributeError):
            raise AppError("invalid_token", "the token is not valid") from None


# action -> roles allowed. Staff roles act only inside their own merchant; admin acts anywhere.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "chat.send": frozenset(Role),
    "order.place": frozenset(Role),
    "draw.enter": frozenset(Role),
    "card.pin": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "sale.manage": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "draw.manage": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "stream.publish": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "stream_key.manage": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "recording.manage": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "sales.read": frozenset({Role.ANCHOR, Role.OPERATOR, Role.ADMIN}),
    "inventory.manage": frozenset({Role.OPERATOR, Role.ADMIN}),
    "order.manage": frozenset({Role.OPERATOR, Role.ADMIN}),
    # buyers' addresses and phones: only the merchant that ships the order, never the platform
    "order.read_pii": frozenset({Role.OPERATOR}),
    "chat.delete": frozenset({Role.MODERATOR, Role.OPERATOR, Role.ADMIN}),
    "user.mute": frozenset({Role.MODERATOR, Role.OPERATOR, Role.ADMIN}),
    "user.ban": frozenset({Role.MODERATOR, Role.OPERATOR, Role.ADMIN}),
    "room.moderate": frozenset({Role.MODERATOR, Role.OPERATOR, Role.ADMIN}),
    "audit.read": frozenset({Role.MODERATOR, Role.OPERATOR, Role.ADMIN}),
    "room.manage": frozenset({Role.OPERATOR, Role.ADMIN}),
    "user.manage": frozenset({Role.OPERATOR, Role.ADMIN}),
    "merchant.manage": frozenset({Role.ADMIN}),
}


def may(principal: Principal, action: str, merchant_id: int | None = None) -> bool:
    """True when the principal's role allows the action within the given merchant."""
    roles = PERMISSIONS.get(action)
    if roles is None:
        raise ValueError(f"unknown action {action!r}")
    if principal.role not in roles:
        return False
    if principal.role is Role.ADMIN or principal.role is Role.VIEWER or merchant_id is None:
        return True
    return principal.merchant_id == merchant_id


def authorize(principal: Principal | None, action: str, merchant_id: int | None = None) -> Principal:
    """Raise a typed error unless the principal may do the action; return it for chaining."""
    if principal is None:
        raise AppError("unauthorized", "sign in first")
    if not may(principal, action, merchant_id):
        raise AppError("forbidden", f"the {principal.role.value} role may not {action}")
    return principal


async def audit(
    session: AsyncSession,
    principal: Principal,
    action: str,
    *,
    merchant_id: int | None = None,
    room_id: int | None = None,
    target_type: str = "",
    target_id: Any = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction: it commits or rolls back with the action."""
    session.add(
        AuditLog(
            actor_id=principal.user_id,
            actor_role=principal.role.value,
            action=action,
            merchant_id=merchant_id if merchant_id is not None else principal.merchant_id,
            room_id=room_id,
            target_type=target_type,
            target_id=str(target_id),
            details=details or {},
        )
    )
