"""Accounts and roles: password hashing, token expiry and tampering, and every role against every action."""

from __future__ import annotations

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from livecommerce.auth import PERMISSIONS, Principal, Tokens, authorize, hash_password, may, verify_password
from livecommerce.db.models import Role
from livecommerce.errors import AppError

SECRET = "s" * 40
MERCHANT = 7
OTHER_MERCHANT = 8

# The whole permission table spelled out once more, independently: a change to auth.PERMISSIONS
# that is not also made here fails the test on purpose.
EXPECTED = {
    Role.VIEWER: {"chat.send", "order.place", "draw.enter"},
    Role.ANCHOR: {
        "chat.send",
        "order.place",
        "draw.enter",
        "card.pin",
        "sale.manage",
        "draw.manage",
        "stream.publish",
        "stream_key.manage",
        "recording.manage",
        "sales.read",
    },
    Role.OPERATOR: {
        "chat.send",
        "order.place",
        "draw.enter",
        "card.pin",
        "sale.manage",
        "draw.manage",
        "stream.publish",
        "stream_key.manage",
        "recording.manage",
        "sales.read",
        "inventory.manage",
        "order.manage",
        "order.read_pii",
        "chat.delete",
        "user.mute",
        "user.ban",
        "room.moderate",
        "audit.read",
        "room.manage",
        "user.manage",
    },
    Role.MODERATOR: {
        "chat.send",
        "order.place",
        "draw.enter",
        "chat.delete",
        "user.mute",
        "user.ban",
        "room.moderate",
        "audit.read",
    },
    Role.ADMIN: set(PERMISSIONS) - {"order.read_pii"},
}


def principal(role: Role, merchant_id: int | None = MERCHANT) -> Principal:
    return Principal(
        user_id=1,
        role=role,
        display_name="x",
        merchant_id=None if role in (Role.VIEWER, Role.ADMIN) else merchant_id,
    )


def test_password_hash_verifies_only_the_same_password():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("correct horse", None)
    assert not verify_password("correct horse", "md5$abc")
    assert hash_password("correct horse") != stored, "salted"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_every_role_against_every_guarded_action(role: Role, action: str):
    allowed = action in EXPECTED[role]
    assert may(principal(role), action, MERCHANT) is allowed
    if allowed:
        assert authorize(principal(role), action, MERCHANT).role is role
    else:
        with pytest.raises(AppError) as error:
            authorize(principal(role), action, MERCHANT)
        assert error.value.code == "forbidden"


@pytest.mark.parametrize("role", [Role.ANCHOR, Role.OPERATOR, Role.MODERATOR])
def test_staff_cannot_act_in_another_merchant(role: Role):
    for action in EXPECTED[role] - EXPECTED[Role.VIEWER]:
        assert not may(principal(role), action, OTHER_MERCHANT)


def test_admin_acts_in_any_merchant():
    assert may(principal(Role.ADMIN), "inventory.manage", OTHER_MERCHANT)


def test_anonymous_is_unauthorized_and_unknown_action_is_a_bug():
    with pytest.raises(AppError) as error:
        authorize(None, "chat.send")
    assert error.value.code == "unauthorized"
    with pytest.raises(ValueError):
        may(principal(Role.ADMIN), "launch.rockets")


def test_token_round_trip_keeps_identity():
    tokens = Tokens(SECRET, session_ttl=60, guest_ttl=120)
    who = Principal(user_id=42, role=Role.OPERATOR, display_name="Wang", merchant_id=3)
    assert tokens.verify(tokens.issue(who)) == who


def test_tampered_token_is_rejected():
    tokens = Tokens(SECRET, session_ttl=60, guest_ttl=120)
    token = tokens.issue(Principal(user_id=42, role=Role.VIEWER, display_name="a", is_guest=True))
    forged = URLSafeTimedSerializer("another-secret-" + "x" * 30, salt="livecommerce.session").dumps(
        {"u": 1, "r": "admin", "n": "root", "m": None, "g": False}
    )
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), forged, "garbage", ""):
        with pytest.raises(AppError) as error:
            tokens.verify(bad)
        assert error.value.code == "invalid_token"


def test_expired_session_token_is_rejected_while_guest_ttl_is_longer():
    issued_at = time.time() - 100
    tokens = Tokens(SECRET, session_ttl=60, guest_ttl=3600)
    serializer = tokens._serializer
    staff = {"u": 1, "r": "operator", "n": "w", "m": 3, "g": False}
    guest = {"u": 2, "r": "viewer", "n": "g", "m": None, "g": True}

    old_signer = serializer.make_signer()
    old_signer.get_timestamp = lambda: int(issued_at)  # type: ignore[method-assign]
    old_staff = old_signer.sign(serializer.dump_payload(staff)).decode()
    old_guest = old_signer.sign(serializer.dump_payload(guest)).decode()
    with pytest.raises(AppError) as error:
        tokens.verify(old_staff)
    assert error.value.code == "token_expired"
    assert tokens.verify(old_guest).user_id == 2
