"""Merchants, users, rooms and stream keys: creation, lookups, sign-in and guest identities (a
guest signing up or in hands the account what it had)."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.auth import Principal, hash_password, hash_stream_key, new_stream_key, verify_password
from livecommerce.db.models import Merchant, Role, Room, StreamKey, User
from livecommerce.errors import AppError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DISPLAY_NAME_MAX = 32
PASSWORD_MIN = 8
# a phone number as people type it: digits with spaces, dots, dashes, brackets, a leading +
_PHONE_TYPED = re.compile(r"^\+?[0-9 ().-]+$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def normal_phone(phone: str) -> str:
    """A phone number as stored: + and 6 to 15 digits (E.164 at most); `invalid_phone` if not one."""
    typed = phone.strip()
    digits = re.sub(r"[^0-9]", "", typed)
    if not _PHONE_TYPED.fullmatch(typed) or not 6 <= len(digits) <= 15:
        raise AppError("invalid_phone", "phone: a phone number of 6 to 15 digits, e.g. +86 138 0013 8000")
    return ("+" if typed.startswith("+") else "") + digits


def normal_email(email: str) -> str:
    """An email address as stored (trimmed, lower case); `invalid_email` if it is not one."""
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not _EMAIL.fullmatch(cleaned):
        raise AppError("invalid_email", "email: an address such as name@example.com")
    return cleaned


def normal_login(login: str) -> str:
    """A login as stored: a phone number's digits, or the login in lower case."""
    typed = login.strip()
    if "@" not in typed and _PHONE_TYPED.fullmatch(typed) and sum(ch.isdigit() for ch in typed) >= 6:
        return normal_phone(typed)
    return typed.lower()


def clean_display_name(name: str) -> str:
    """Trim, collapse whitespace and drop control characters; reject what is left empty."""
    cleaned = " ".join("".join(ch for ch in name if ch.isprintable()).split())
    if not cleaned:
        raise AppError("invalid", "display name must not be empty")
    if len(cleaned) > DISPLAY_NAME_MAX:
        raise AppError("invalid", f"display name must be at most {DISPLAY_NAME_MAX} characters")
    return cleaned


def check_slug(slug: str) -> str:
    if not _SLUG.match(slug):
        raise AppError("invalid", "slug must be lower-case letters, digits and dashes")
    return slug


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        role=user.role,
        display_name=user.display_name,
        merchant_id=user.merchant_id,
        is_guest=user.is_guest,
        token_version=user.token_version,
    )


async def create_merchant(session: AsyncSession, *, name: str, slug: str, currency: str = "USD") -> Merchant:
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise AppError("invalid", "currency must be a three-letter ISO 4217 code")
    merchant = Merchant(name=name, slug=check_slug(slug), currency=currency)
    session.add(merchant)
    try:
        await session.flush()
    except IntegrityError:
        raise AppError("already_exists", f"a merchant with slug {slug!r} exists") from None
    return merchant


async def create_user(
    session: AsyncSession,
    *,
    login: str,
    password: str,
    role: Role,
    display_name: str,
    merchant_id: int | None = None,
) -> User:
    if len(password) < PASSWORD_MIN:
        raise AppError("invalid", f"password must be at least {PASSWORD_MIN} characters")
    if role not in (Role.VIEWER, Role.ADMIN) and merchant_id is None:
        raise AppError("invalid", f"a {role.value} account belongs to a merchant")
    user = User(
        login=normal_login(login),
        password_hash=hash_password(password),
        role=role,
        display_name=clean_display_name(display_name),
        merchant_id=merchant_id,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise AppError("already_exists", f"login {login!r} is taken") from None
    return user


async def create_guest(session: AsyncSession, display_name: str) -> User:
    user = User(display_name=clean_display_name(display_name), is_guest=True, role=Role.VIEWER)
    session.add(user)
    await session.flush()
    return user


# Checked against when the login does not exist, so an unknown login costs the same scrypt
# work as a wrong password and the answer's timing does not tell which logins exist.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


async def sign_in(session: AsyncSession, login: str, password: str) -> User:
    user = await session.scalar(select(User).where(User.login == normal_login(login)))
    password_ok = verify_password(password, user.password_hash if user is not None else _DUMMY_HASH)
    if user is None or user.disabled or not password_ok:
        raise AppError("invalid_credentials", "wrong login or password")
    return user


# What a guest hands the account it signs in to, in one transaction (:guest, :account, :name).
# Locks first: the guest's row (two sign-ins with one guest token take over once), then the
# sales whose holdings move, in id order (a sale's batch also locks its sale row before its
# buyers' holdings, so a batch and a takeover never wait on each other both ways), then the open
# draws it entered (a draw's close locks its row, so none closes while its entries move).
_GUEST_TO_RETIRE = text(
    "SELECT id FROM users WHERE id = :guest AND is_guest AND merged_into_id IS NULL FOR UPDATE"
)
_TAKE_OVER = [
    text(
        "SELECT id FROM flash_sales WHERE id IN (SELECT sale_id FROM sale_buyers WHERE user_id = :guest) "
        "ORDER BY id FOR UPDATE"
    ),
    text(
        "SELECT d.id FROM draws d JOIN draw_entries e ON e.draw_id = d.id AND e.user_id = :guest "
        "WHERE d.state = 'open' ORDER BY d.id FOR SHARE OF d"
    ),
    # orders, with the keys they were placed with; one the account used too is kept apart
    text(
        "UPDATE orders o SET user_id = :account, idempotency_key = CASE WHEN EXISTS "
        "(SELECT 1 FROM orders a WHERE a.user_id = :account AND a.idempotency_key = o.idempotency_key) "
        "THEN left('guest-' || :guest || ':' || o.idempotency_key, 100) ELSE o.idempotency_key END "
        "WHERE o.user_id = :guest"
    ),
    # the first answers to the guest's purchase keys, but the account's own where both used one
    text(
        "DELETE FROM order_attempts g WHERE g.user_id = :guest AND EXISTS (SELECT 1 FROM order_attempts a "
        "WHERE a.user_id = :account AND a.idempotency_key = g.idempotency_key)"
    ),
    text("UPDATE order_attempts SET user_id = :account WHERE user_id = :guest"),
    # units held in each sale add up: the buyer holds them either way
    text(
        "INSERT INTO sale_buyers (sale_id, user_id, units) SELECT sale_id, :account, units FROM sale_buyers "
        "WHERE user_id = :guest ON CONFLICT (sale_id, user_id) DO UPDATE SET units = sale_buyers.units + excluded.units"
    ),
    text("DELETE FROM sale_buyers WHERE user_id = :guest"),
    # what the buyer did to their orders (a cancel, a return request) is the account's history
    text("UPDATE order_events SET actor_id = :account WHERE actor_id = :guest"),
    # saved checkout details: the account's own, if it has some
    text(
        "INSERT INTO buyer_details (user_id, details, updated_at) SELECT :account, details, updated_at "
        "FROM buyer_details WHERE user_id = :guest ON CONFLICT (user_id) DO NOTHING"
    ),
    text("DELETE FROM buyer_details WHERE user_id = :guest"),
    # entries in draws still open: the account's own entry where it has one; a closed draw's
    # entrants were published and stay as they are (the account claims the guest's prizes)
    text(
        "INSERT INTO draw_entries (draw_id, user_id, display_name, entered_at) "
        "SELECT e.draw_id, :account, :name, e.entered_at FROM draw_entries e JOIN draws d ON d.id = e.draw_id "
        "WHERE e.user_id = :guest AND d.state = 'open' ON CONFLICT (draw_id, user_id) DO NOTHING"
    ),
    text(
        "DELETE FROM draw_entries e USING draws d "
        "WHERE d.id = e.draw_id AND e.user_id = :guest AND d.state = 'open'"
    ),
    # the guest is retired: every token it was given is refused from now on
    text("UPDATE users SET merged_into_id = :account, token_version = token_version + 1 WHERE id = :guest"),
]


async def take_over_guest(session: AsyncSession, guest_id: int, account: User) -> bool:
    """Hand the account everything the guest had as a buyer, and retire the guest; False (and
    nothing changes) when the guest is no longer one to take over (an account, or retired).

    The account gets the guest's orders (with their purchase keys and units held in sales),
    the guest's saved checkout details unless it has its own, and its entries in draws still
    open unless it entered them itself. Prizes the guest won in draws already closed are the
    account's to claim. Chat messages stay the guest's, under the name it wrote them with.
    """
    if await session.scalar(_GUEST_TO_RETIRE, {"guest": guest_id}) is None:
        return False
    values = {"guest": guest_id, "account": account.id, "name": account.display_name}
    for statement in _TAKE_OVER:
        await session.execute(statement, values)
    return True


async def sign_up(
    session: AsyncSession, *, login: str, password: str, display_name: str | None, guest_id: int | None
) -> User:
    """A viewer account whose login is an email address or a phone number.

    A guest who signs up keeps everything: the guest's own identity becomes the account, so its
    orders, saved checkout details and draw entries are the account's from now on; the guest's
    tokens are revoked (the answer carries a new one).
    """
    login = normal_email(login) if "@" in login else normal_phone(login)
    if len(password) < PASSWORD_MIN:
        raise AppError("weak_password", f"password must be at least {PASSWORD_MIN} characters")
    if guest_id is None:
        # never the login as the name others see in chat: it is an email address or a phone number
        name = display_name or f"Viewer {1000 + secrets.randbelow(9000)}"
        return await create_user(session, login=login, password=password, role=Role.VIEWER, display_name=name)
    values: dict[str, object] = {
        "login": login,
        "password_hash": hash_password(password),
        "is_guest": False,
        "token_version": User.token_version + 1,
    }
    if display_name:
        values["display_name"] = clean_display_name(display_name)
    try:
        async with session.begin_nested():
            user = await session.scalar(
                update(User)
                .where(User.id == guest_id, User.is_guest)
                .values(**values)
                .returning(User)
                .execution_options(populate_existing=True)
            )
    except IntegrityError:
        raise AppError("already_exists", "that login already has an account; sign in instead") from None
    if user is None:
        raise AppError("already_registered", "this account is already signed up")
    return user


async def token_states(session: AsyncSession, user_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """Each user's current token version and whether the account is disabled (absent if gone)."""
    rows = await session.execute(
        select(User.id, User.token_version, User.disabled).where(User.id.in_(user_ids))
    )
    return {row.id: (row.token_version, row.disabled) for row in rows}


async def revoke_tokens(session: AsyncSession, user_id: int) -> None:
    """Refuse every token issued to the user so far (sign out everywhere)."""
    await session.execute(update(User).where(User.id == user_id).values(token_version=User.token_version + 1))


async def disable_user(session: AsyncSession, user_id: int) -> None:
    """Disable the account: it can no longer sign in, and its tokens are refused."""
    await session.execute(
        update(User).where(User.id == user_id).values(disabled=True, token_version=User.token_version + 1)
    )


async def create_room(
    session: AsyncSession, *, merchant_id: int, title: str, slug: str | None = None
) -> Room:
    room = Room(merchant_id=merchant_id, title=title, slug=check_slug(slug or secrets.token_hex(5)))
    session.add(room)
    try:
        await session.flush()
    except IntegrityError:
        raise AppError("already_exists", f"a room with slug {slug!r} exists") from None
    return room


async def find_room(session: AsyncSession, room_id: int) -> Room | None:
    return await session.get(Room, room_id)


async def find_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def all_rooms(session: AsyncSession) -> list[Room]:
    """Every room, oldest first."""
    return list((await session.scalars(select(Room).order_by(Room.id))).all())


async def create_stream_key(
    session: AsyncSession,
    *,
    room_id: int,
    created_by: int | None = None,
    label: str = "",
    key: str | None = None,
) -> tuple[StreamKey, str]:
    """Return the stored row and the plaintext key, which is shown once and never stored."""
    plaintext = key or new_stream_key()
    row = StreamKey(
        room_id=room_id,
        key_hash=hash_stream_key(plaintext),
        key_prefix=plaintext[:10],
        label=label,
        created_by=created_by,
    )
    session.add(row)
    await session.flush()
    return row, plaintext


async def room_for_stream_key(session: AsyncSession, key: str) -> StreamKey | None:
    return await session.scalar(
        select(StreamKey).where(StreamKey.key_hash == hash_stream_key(key), StreamKey.revoked_at.is_(None))
    )
