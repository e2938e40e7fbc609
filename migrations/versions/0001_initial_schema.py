"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:06:55.153110
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Lets one statement refuse to finish when what it relied on changed (an optimistic order batch
# whose sale moved meanwhile): the whole statement rolls back with serialization_failure.
REQUIRE_FUNCTION = """
CREATE FUNCTION livecommerce_require(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = message;
    END IF;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    op.execute(REQUIRE_FUNCTION)
    op.create_table(
        "merchants",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("slug", name=op.f("uq_merchants_slug")),
    )
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payment_ref", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
    )
    op.create_index(op.f("ix_payment_events_payment_ref"), "payment_events", ["payment_ref"], unique=False)
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("image_url", sa.String(length=1000), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_products_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
    )
    op.create_index(op.f("ix_products_merchant_id"), "products", ["merchant_id"], unique=False)
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("login", sa.String(length=200), nullable=True),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=True),
        sa.Column(
            "role",
            sa.Enum("viewer", "anchor", "operator", "moderator", "admin", name="user_role"),
            server_default="viewer",
            nullable=False,
        ),
        sa.Column("is_guest", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "role IN ('viewer', 'admin') OR merchant_id IS NOT NULL", name=op.f("ck_users_staff_has_merchant")
        ),
        sa.CheckConstraint("is_guest OR login IS NOT NULL", name=op.f("ck_users_account_has_login")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_users_merchant_id_merchants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
    )
    op.create_index(op.f("ix_users_merchant_id"), "users", ["merchant_id"], unique=False)
    op.create_table(
        "rooms",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column(
            "status", sa.Enum("offline", "live", name="room_status"), server_default="offline", nullable=False
        ),
        sa.Column("pinned_product_id", sa.BigInteger(), nullable=True),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slow_mode_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("blocked_words", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_rooms_merchant_id_merchants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pinned_product_id"],
            ["products.id"],
            name=op.f("fk_rooms_pinned_product_id_products"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rooms")),
        sa.UniqueConstraint("slug", name=op.f("uq_rooms_slug")),
    )
    op.create_index(op.f("ix_rooms_merchant_id"), "rooms", ["merchant_id"], unique=False)
    op.create_table(
        "skus",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("on_hand", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_skus_price_not_negative")),
        sa.CheckConstraint(
            "reserved >= 0 AND reserved <= on_hand", name=op.f("ck_skus_reserved_within_on_hand")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_skus_merchant_id_merchants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_skus_product_id_products"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skus")),
        sa.UniqueConstraint("merchant_id", "code", name=op.f("uq_skus_merchant_id_code")),
    )
    op.create_index(op.f("ix_skus_merchant_id"), "skus", ["merchant_id"], unique=False)
    op.create_index(op.f("ix_skus_product_id"), "skus", ["product_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("room_id", sa.BigInteger(), nullable=True),
        sa.Column("target_type", sa.String(length=32), server_default="", nullable=False),
        sa.Column("target_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_audit_log_actor_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_audit_log_merchant_id_merchants"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_audit_log_room_id_rooms"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor_id"], unique=False)
    op.create_index(op.f("ix_audit_log_merchant_id"), "audit_log", ["merchant_id"], unique=False)
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deleted_by"], ["users.id"], name=op.f("fk_chat_messages_deleted_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_chat_messages_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_chat_messages_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index("ix_chat_messages_room_id_id", "chat_messages", ["room_id", "id"], unique=False)
    op.create_table(
        "draws",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("prize_text", sa.String(length=200), nullable=False),
        sa.Column("prize_sku_id", sa.BigInteger(), nullable=True),
        sa.Column("winners_count", sa.Integer(), nullable=False),
        sa.Column("rule", sa.Enum("keyword", "watching", "ordered", name="draw_rule"), nullable=False),
        sa.Column("keyword", sa.String(length=100), nullable=True),
        sa.Column("min_watch_seconds", sa.Double(), server_default="0", nullable=False),
        sa.Column(
            "state",
            sa.Enum("open", "closed", "cancelled", name="draw_state"),
            server_default="open",
            nullable=False,
        ),
        sa.Column("seed_commitment", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entrants_hash", sa.String(length=64), nullable=True),
        sa.Column("entrant_count", sa.Integer(), nullable=True),
        sa.Column("claim_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("winners_count >= 1", name=op.f("ck_draws_winners_positive")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_draws_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_draws_merchant_id_merchants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prize_sku_id"], ["skus.id"], name=op.f("fk_draws_prize_sku_id_skus"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_draws_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draws")),
    )
    op.create_index(op.f("ix_draws_room_id"), "draws", ["room_id"], unique=False)
    op.create_index(
        "uq_draws_open_room_id", "draws", ["room_id"], unique=True, postgresql_where=sa.text("state = 'open'")
    )
    op.create_table(
        "flash_sales",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("sku_id", sa.BigInteger(), nullable=False),
        sa.Column("sale_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("allocated", sa.Integer(), nullable=False),
        sa.Column("available", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "state",
            sa.Enum("scheduled", "live", "sold_out", "ended", name="sale_state"),
            server_default="scheduled",
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stock_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "available >= 0 AND available <= allocated",
            name=op.f("ck_flash_sales_available_within_allocated"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_flash_sales_ends_after_start")),
        sa.CheckConstraint("per_user_limit >= 1", name=op.f("ck_flash_sales_limit_positive")),
        sa.CheckConstraint("sale_price_minor >= 0", name=op.f("ck_flash_sales_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_flash_sales_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_flash_sales_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_flash_sales_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sku_id"], ["skus.id"], name=op.f("fk_flash_sales_sku_id_skus"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flash_sales")),
    )
    op.create_index(op.f("ix_flash_sales_room_id"), "flash_sales", ["room_id"], unique=False)
    op.create_index(
        "ix_flash_sales_open_sku",
        "flash_sales",
        ["sku_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'ended'"),
    )
    op.create_index(op.f("ix_flash_sales_sku_id"), "flash_sales", ["sku_id"], unique=False)
    op.create_table(
        "room_restrictions",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=300), server_default="", nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('mute', 'ban')", name=op.f("ck_room_restrictions_kind_known")),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_room_restrictions_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_room_restrictions_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_room_restrictions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "user_id", "kind", name=op.f("pk_room_restrictions")),
    )
    op.create_index(
        "ix_room_restrictions_room_id_client_hash", "room_restrictions", ["room_id", "client_hash"], unique=False
    )
    op.create_table(
        "stream_keys",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("label", sa.String(length=100), server_default="", nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_stream_keys_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_stream_keys_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_stream_keys_key_hash")),
    )
    op.create_index(op.f("ix_stream_keys_room_id"), "stream_keys", ["room_id"], unique=False)
    op.create_table(
        "draw_entries",
        sa.Column("draw_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["draw_id"], ["draws.id"], name=op.f("fk_draw_entries_draw_id_draws"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_draw_entries_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("draw_id", "user_id", name=op.f("pk_draw_entries")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=True),
        sa.Column("sale_id", sa.BigInteger(), nullable=True),
        sa.Column("sku_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Enum("sale", "prize", name="order_kind"), server_default="sale", nullable=False),
        sa.Column(
            "status",
            sa.Enum("reserved", "paid", "expired", "cancelled", "refunded", name="order_status"),
            server_default="reserved",
            nullable=False,
        ),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipping", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount_minor = quantity * unit_price_minor", name=op.f("ck_orders_amount_matches")
        ),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_orders_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_orders_merchant_id_merchants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_orders_room_id_rooms"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["flash_sales.id"], name=op.f("fk_orders_sale_id_flash_sales"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_orders_sku_id_skus")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("user_id", "idempotency_key", name=op.f("uq_orders_user_id_idempotency_key")),
    )
    op.create_index(op.f("ix_orders_merchant_id"), "orders", ["merchant_id"], unique=False)
    op.create_index(
        "ix_orders_reserved_until",
        "orders",
        ["reserved_until"],
        unique=False,
        postgresql_where=sa.text("status = 'reserved'"),
    )
    op.create_index(op.f("ix_orders_room_id"), "orders", ["room_id"], unique=False)
    op.create_index(op.f("ix_orders_sale_id"), "orders", ["sale_id"], unique=False)
    op.create_index(op.f("ix_orders_sku_id"), "orders", ["sku_id"], unique=False)
    op.create_index(op.f("ix_orders_user_id"), "orders", ["user_id"], unique=False)
    op.create_table(
        "sale_buyers",
        sa.Column("sale_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.CheckConstraint("units >= 0", name=op.f("ck_sale_buyers_units_not_negative")),
        sa.ForeignKeyConstraint(
            ["sale_id"],
            ["flash_sales.id"],
            name=op.f("fk_sale_buyers_sale_id_flash_sales"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sale_buyers_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sale_id", "user_id", name=op.f("pk_sale_buyers")),
    )
    op.create_table(
        "order_attempts",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("sale_id", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_attempts_order_id_orders"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"],
            ["flash_sales.id"],
            name=op.f("fk_order_attempts_sale_id_flash_sales"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_order_attempts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "idempotency_key", name=op.f("pk_order_attempts")),
    )
    op.create_index(op.f("ix_order_attempts_sale_id"), "order_attempts", ["sale_id"], unique=False)
    op.create_table(
        "stream_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("stream_key_id", sa.BigInteger(), nullable=True),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("publisher_address", sa.String(length=100), server_default="", nullable=False),
        sa.Column("user_agent", sa.String(length=300), server_default="", nullable=False),
        sa.Column("video_codec", sa.String(length=32), nullable=True),
        sa.Column("audio_codec", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_stream_sessions_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["stream_key_id"],
            ["stream_keys.id"],
            name=op.f("fk_stream_sessions_stream_key_id_stream_keys"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_sessions")),
    )
    op.create_index(op.f("ix_stream_sessions_room_id"), "stream_sessions", ["room_id"], unique=False)
    op.create_table(
        "room_viewer_samples",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("viewers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_room_viewer_samples_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("room_id", "bucket", name=op.f("pk_room_viewer_samples")),
    )
    op.create_table(
        "draw_winners",
        sa.Column("draw_id", sa.BigInteger(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_order_id", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["claim_order_id"],
            ["orders.id"],
            name=op.f("fk_draw_winners_claim_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["draw_id"], ["draws.id"], name=op.f("fk_draw_winners_draw_id_draws"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_draw_winners_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("draw_id", "rank", name=op.f("pk_draw_winners")),
        sa.UniqueConstraint("draw_id", "user_id", name=op.f("uq_draw_winners_draw_id_user_id")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_payments_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("provider_ref", name=op.f("uq_payments_provider_ref")),
    )
    op.create_index(op.f("ix_payments_order_id"), "payments", ["order_id"], unique=False)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS livecommerce_require(boolean, text)")
    op.drop_index(op.f("ix_payments_order_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("draw_winners")
    op.drop_table("room_viewer_samples")
    op.drop_index(op.f("ix_stream_sessions_room_id"), table_name="stream_sessions")
    op.drop_table("stream_sessions")
    op.drop_index(op.f("ix_order_attempts_sale_id"), table_name="order_attempts")
    op.drop_table("order_attempts")
    op.drop_table("sale_buyers")
    op.drop_index(op.f("ix_orders_user_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_sku_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_sale_id"), table_name="orders")
    op.drop_index(op.f("ix_orders_room_id"), table_name="orders")
    op.drop_index(
        "ix_orders_reserved_until", table_name="orders", postgresql_where=sa.text("status = 'reserved'")
    )
    op.drop_index(op.f("ix_orders_merchant_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_table("draw_entries")
    op.drop_index(op.f("ix_stream_keys_room_id"), table_name="stream_keys")
    op.drop_table("stream_keys")
    op.drop_index("ix_room_restrictions_room_id_client_hash", table_name="room_restrictions")
    op.drop_table("room_restrictions")
    op.drop_index(op.f("ix_flash_sales_sku_id"), table_name="flash_sales")
    op.drop_index(op.f("ix_flash_sales_room_id"), table_name="flash_sales")
    op.drop_index("ix_flash_sales_open_sku", table_name="flash_sales", postgresql_where=sa.text("state <> 'ended'"))
    op.drop_table("flash_sales")
    op.drop_index("uq_draws_open_room_id", table_name="draws")
    op.drop_index(op.f("ix_draws_room_id"), table_name="draws")
    op.drop_table("draws")
    op.drop_index("ix_chat_messages_room_id_id", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index(op.f("ix_audit_log_merchant_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_skus_product_id"), table_name="skus")
    op.drop_index(op.f("ix_skus_merchant_id"), table_name="skus")
    op.drop_table("skus")
    op.drop_index(op.f("ix_rooms_merchant_id"), table_name="rooms")
    op.drop_table("rooms")
    op.drop_index(op.f("ix_users_merchant_id"), table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_products_merchant_id"), table_name="products")
    op.drop_table("products")
    op.drop_index(op.f("ix_payment_events_payment_ref"), table_name="payment_events")
    op.drop_table("payment_events")
    op.drop_table("merchants")
    for enum_name in (
        "user_role",
        "room_status",
        "draw_rule",
        "draw_state",
        "sale_state",
        "order_kind",
        "order_status",
    ):
        sa.Enum(name=enum_name).drop(op.get_bind(), checkfirst=True)
