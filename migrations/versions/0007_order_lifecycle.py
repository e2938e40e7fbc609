"""Order lifecycle after payment: shipped, delivered, closed and return requests; order events
and shipments

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-29 18:00:00

Every change of an order's status is recorded in `order_events` (who, when, why); a shipped
order has one `shipments` row with its carrier and tracking number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("reserved", "paid", "expired", "cancelled", "refunded")
ADDED = ("shipped", "delivered", "closed", "return_requested")


def upgrade() -> None:
    for value in ADDED:
        op.execute(f"ALTER TYPE order_status ADD VALUE IF NOT EXISTS '{value}'")
    status = postgresql.ENUM(name="order_status", create_type=False)
    op.create_table(
        "order_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", status, nullable=True),
        sa.Column("to_status", status, nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_order_events_order_id_orders", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name="fk_order_events_actor_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id"])
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("shipped_by", sa.BigInteger(), nullable=True),
        sa.Column("shipped_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_shipments_order_id_orders", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shipped_by"], ["users.id"], name="fk_shipments_shipped_by_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("order_id", name="pk_shipments"),
    )


def downgrade() -> None:
    op.drop_table("shipments")
    op.drop_index("ix_order_events_order_id", table_name="order_events")
    op.drop_table("order_events")
    # PostgreSQL cannot drop enum values: orders past payment go back to paid, the type is rebuilt
    op.execute(f"UPDATE orders SET status = 'paid' WHERE status::text IN {ADDED!r}")
    op.execute("ALTER TYPE order_status RENAME TO order_status_0007")
    op.execute(f"CREATE TYPE order_status AS ENUM {BEFORE!r}")
    op.drop_index("ix_orders_reserved_until", table_name="orders")
    op.execute("ALTER TABLE orders ALTER COLUMN status DROP DEFAULT")
    op.execute("ALTER TABLE orders ALTER COLUMN status TYPE order_status USING status::text::order_status")
    op.execute("ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'reserved'")
    op.execute("DROP TYPE order_status_0007")
    op.create_index(
        "ix_orders_reserved_until",
        "orders",
        ["reserved_until"],
        postgresql_where=sa.text("status = 'reserved'"),
    )
