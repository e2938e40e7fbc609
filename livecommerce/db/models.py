"""The whole domain as SQLAlchemy 2.0 typed models. Money is integer minor units plus a currency."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda members: [m.value for m in members])


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Role(enum.StrEnum):
    VIEWER = "viewer"
    ANCHOR = "anchor"
    OPERATOR = "operator"
    MODERATOR = "moderator"
    ADMIN = "admin"


class RoomStatus(enum.StrEnum):
    OFFLINE = "offline"
    LIVE = "live"


class SaleState(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


class OrderStatus(enum.StrEnum):
    RESERVED = "reserved"
    PAID = "paid"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CLOSED = "closed"
    RETURN_REQUESTED = "return_requested"


class OrderKind(enum.StrEnum):
    SALE = "sale"
    PRIZE = "prize"


class DrawState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class DrawRule(enum.StrEnum):
    KEYWORD = "keyword"
    WATCHING = "watching"
    ORDERED = "ordered"


class Merchant(Base):
    __tablename__ = "merchants"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    created_at: Mapped[datetime] = _created()


class User(Base):
    """Registered accounts and guest viewers alike; guests have no login and no password."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), index=True
    )
    login: Mapped[str | None] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), server_default=Role.VIEWER.value)
    is_guest: Mapped[bool] = mapped_column(server_default=text("false"))
    disabled: Mapped[bool] = mapped_column(server_default=text("false"))
    # carried in every token issued to the user; raising it revokes them all (logout, disable)
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")
    # a retired guest: the account that signed in with it and took over what it had
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint("is_guest OR login IS NOT NULL", name="account_has_login"),
        CheckConstraint("role IN ('viewer', 'admin') OR merchant_id IS NOT NULL", name="staff_has_merchant"),
    )


class Room(Base):
    __tablename__ = "rooms"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[RoomStatus] = mapped_column(
        _enum(RoomStatus, "room_status"), server_default=RoomStatus.OFFLINE.value
    )
    pinned_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    pinned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, server_default="0")
    blocked_words: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    created_at: Mapped[datetime] = _created()


class StreamKey(Base):
    """Stream keys are 256-bit random secrets, so a SHA-256 digest is enough to store them."""

    __tablename__ = "stream_keys"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))
    label: Mapped[str] = mapped_column(String(100), server_default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StreamSession(Base):
    __tablename__ = "stream_sessions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    stream_key_id: Mapped[int | None] = mapped_column(ForeignKey("stream_keys.id", ondelete="SET NULL"))
    node_id: Mapped[str] = mapped_column(String(100))
    publisher_address: Mapped[str] = mapped_column(String(100), server_default="")
    user_agent: Mapped[str] = mapped_column(String(300), server_default="")
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = _created()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(64))


class Recording(Base):
    """A stream session's CMAF segments in the recordings store, and how far recording got."""

    __tablename__ = "recordings"
    stream_session_id: Mapped[int] = mapped_column(
        ForeignKey("stream_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    # recording, complete (VOD playlist written) or failed (stopped; `error` says why)
    state: Mapped[str] = mapped_column(String(16), server_default="recording")
    error: Mapped[str] = mapped_column(Text, server_default="")
    # wall-clock time of the first frame: offset 0 of the recording's timeline
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[float] = mapped_column(Float, server_default="0")
    size_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    segments: Mapped[int] = mapped_column(Integer, server_default="0")
    __table_args__ = (
        CheckConstraint("state IN ('recording', 'complete', 'failed')", name="state_known"),
        Index("ix_recordings_started_at", "started_at"),
    )


class Clip(Base):
    """A moment of a recording marked by the anchor or an operator, with its own link."""

    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_session_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.stream_session_id", ondelete="CASCADE"), index=True
    )
    offset_seconds: Mapped[float] = mapped_column(Float)
    title: Mapped[str] = mapped_column(String(200), server_default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (CheckConstraint("offset_seconds >= 0", name="offset_not_negative"),)


class RoomViewerSample(Base):
    """The most viewers a room had in one minute, as the realtime plane counted them."""

    __tablename__ = "room_viewer_samples"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    viewers: Mapped[int] = mapped_column(Integer)


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    image_url: Mapped[str] = mapped_column(String(1000), server_default="")
    created_at: Mapped[datetime] = _created()


class Sku(Base):
    """A sellable variant. available = on_hand - reserved; sold units leave on_hand when paid."""

    __tablename__ = "skus"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    on_hand: Mapped[int] = mapped_column(Integer, server_default="0")
    reserved: Mapped[int] = mapped_column(Integer, server_default="0")
    # raised by a trigger (migration 0008) whenever on_hand or reserved changes: free-stock
    # events and cards carry it, and rooms keep the highest seen
    stock_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="reserved_within_on_hand"),
    )


class FlashSale(Base):
    """Units allocated to a sale; available is what taps can still reserve."""

    __tablename__ = "flash_sales"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), index=True)
    sale_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    allocated: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    per_user_limit: Mapped[int] = mapped_column(Integer, server_default="1")
    # the merchant chose to keep selling after the live ends (else the live's end ends the sale)
    keep_open_after_live: Mapped[bool] = mapped_column(server_default=text("false"))
    state: Mapped[SaleState] = mapped_column(
        _enum(SaleState, "sale_state"), server_default=SaleState.SCHEDULED.value
    )
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # raised by a trigger (migration 0002) in every statement that changes what clients see of
    # the sale: a newer view always carries a higher version, and rooms keep the highest seen
    stock_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    __table_args__ = (
        CheckConstraint("available >= 0 AND available <= allocated", name="available_within_allocated"),
        CheckConstraint("per_user_limit >= 1", name="limit_positive"),
        CheckConstraint("sale_price_minor >= 0", name="price_not_negative"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        # one open sale per SKU, so a tap naming a SKU finds exactly one sale
        Index("ix_flash_sales_open_sku", "sku_id", unique=True, postgresql_where=text("state <> 'ended'")),
    )


class SaleBuyer(Base):
    """Units each buyer holds in a sale, so the per-viewer limit is one conditional upsert."""

    __tablename__ = "sale_buyers"
    sale_id: Mapped[int] = mapped_column(ForeignKey("flash_sales.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    units: Mapped[int] = mapped_column(Integer)
    __table_args__ = (CheckConstraint("units >= 0", name="units_not_negative"),)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"), index=True)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("flash_sales.id", ondelete="SET NULL"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[OrderKind] = mapped_column(
        _enum(OrderKind, "order_kind"), server_default=OrderKind.SALE.value
    )
    status: Mapped[OrderStatus] = mapped_column(
        _enum(OrderStatus, "order_status"), server_default=OrderStatus.RESERVED.value
    )
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shipping: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # the language the buyer checked out in (a BCP 47 tag): mail about the order is in it
    language: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime] = _created()
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        CheckConstraint("amount_minor = quantity * unit_price_minor", name="amount_matches"),
        Index("ix_orders_reserved_until", "reserved_until", postgresql_where=text("status = 'reserved'")),
    )


class MailOutbox(Base):
    """A message about an order (its receipt, its refund), written in the transaction that
    changed the order and sent by whichever node's sender takes it first: one of each kind per
    order. `message` is the whole message as it goes out; `last_error` says why it is waiting
    or why it was given up (`failed`)."""

    __tablename__ = "mail_outbox"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(254))
    message_id: Mapped[str] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(8), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = _created()
    last_error: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("order_id", "kind"),
        CheckConstraint("kind IN ('receipt', 'refund')", name="kind_known"),
        CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state_known"),
        Index("ix_mail_outbox_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    )


class OrderEvent(Base):
    """One change of an order's status: the action, who took it, when and why."""

    __tablename__ = "order_events"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[OrderStatus | None] = mapped_column(_enum(OrderStatus, "order_status"))
    to_status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_role: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    at: Mapped[datetime] = _created()


class Shipment(Base):
    """The parcel of a shipped order: carrier and tracking number, and when it was delivered."""

    __tablename__ = "shipments"
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str] = mapped_column(String(64))
    shipped_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    shipped_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OrderAttempt(Base):
    """The first answer to each buyer's idempotency key, so a repeated key gets it back unchanged.

    A tap names one offer: a flash sale (`sale_id`) or a SKU at its list price (`sku_id`, with
    the room it was tapped in; a sale's tap has its sale's room)."""

    __tablename__ = "order_attempts"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("flash_sales.id", ondelete="CASCADE"), index=True)
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (CheckConstraint("num_nonnulls(sale_id, sku_id) = 1", name="names_one_offer"),)


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_refunded_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class PaymentEvent(Base):
    """Every provider event applied once, whatever order and however often it arrives."""

    __tablename__ = "payment_events"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payment_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    received_at: Mapped[datetime] = _created()
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class Draw(Base):
    """A commit-reveal prize draw: seed_commitment is published at start, seed at the close."""

    __tablename__ = "draws"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    prize_text: Mapped[str] = mapped_column(String(200))
    prize_sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id", ondelete="SET NULL"))
    winners_count: Mapped[int] = mapped_column(Integer)
    rule: Mapped[DrawRule] = mapped_column(_enum(DrawRule, "draw_rule"))
    keyword: Mapped[str | None] = mapped_column(String(100))
    min_watch_seconds: Mapped[float] = mapped_column(server_default="0")
    state: Mapped[DrawState] = mapped_column(
        _enum(DrawState, "draw_state"), server_default=DrawState.OPEN.value
    )
    seed_commitment: Mapped[str] = mapped_column(String(64))
    seed: Mapped[str] = mapped_column(String(64))
    opens_at: Mapped[datetime] = _created()
    closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entrants_hash: Mapped[str | None] = mapped_column(String(64))
    entrant_count: Mapped[int | None] = mapped_column(Integer)
    claim_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("winners_count >= 1", name="winners_positive"),
        Index("uq_draws_open_room_id", "room_id", unique=True, postgresql_where=text("state = 'open'")),
    )


class DrawEntry(Base):
    __tablename__ = "draw_entries"
    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = _created()


class DrawWinner(Base):
    __tablename__ = "draw_winners"
    draw_id: Mapped[int] = mapped_column(ForeignKey("draws.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    claim_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("draw_id", "user_id"),)


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    __table_args__ = (Index("ix_chat_messages_room_id_id", "room_id", "id"),)


class RoomFollow(Base):
    """A signed-in account following a room (guests cannot follow)."""

    __tablename__ = "room_follows"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = _created()
    __table_args__ = (Index("ix_room_follows_user_id", "user_id"),)


class RoomRestriction(Base):
    """A mute or ban of one account in one room; expires_at NULL means until lifted.

    client_hash (a keyed hash of a banned guest's address) also keeps that address's other
    guest identities out of the room.
    """

    __tablename__ = "room_restrictions"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(300), server_default="")
    client_hash: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created()
    __table_args__ = (
        CheckConstraint("kind IN ('mute', 'ban')", name="kind_known"),
        Index("ix_room_restrictions_room_id_client_hash", "room_id", "client_hash"),
    )


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _created()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="SET NULL"), index=True
    )
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"))
    target_type: Mapped[str] = mapped_column(String(32), server_default="")
    target_id: Mapped[str] = mapped_column(String(64), server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")


class RoomProduct(Base):
    """A product offered in a room's live: what viewers find in the room's bag."""

    __tablename__ = "room_products"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = _created()


class BuyerDetails(Base):
    """What a buyer last gave at checkout (name, phone, email, address), to fill in the next
    checkout; each order keeps its own copy in `orders.shipping`."""

    __tablename__ = "buyer_details"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = _created()


class PersonalDataAccess(Base):
    """Every time staff saw or exported buyers' addresses: who, when, what they did, which orders."""

    __tablename__ = "personal_data_access"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _created()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_role: Mapped[str] = mapped_column(String(16))
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    order_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
