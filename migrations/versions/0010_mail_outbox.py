"""mail outbox: receipts and refund confirmations queued with the order change that causes them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 21:00:00

`mail_outbox` holds each message as it will be sent, written in the transaction that pays or
refunds the order, at most one of each kind per order; each node's sender takes due rows with
`FOR UPDATE SKIP LOCKED`. `orders.language` is the language the buyer checked out in.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("language", sa.String(length=35), nullable=True))
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('receipt', 'refund')", name=op.f("ck_mail_outbox_kind_known")),
        sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name=op.f("ck_mail_outbox_state_known")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_mail_outbox_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
        sa.UniqueConstraint("order_id", "kind", name=op.f("uq_mail_outbox_order_id_kind")),
    )
    op.create_index(
        "ix_mail_outbox_due",
        "mail_outbox",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_mail_outbox_due", table_name="mail_outbox", postgresql_where=sa.text("state = 'pending'")
    )
    op.drop_table("mail_outbox")
    op.drop_column("orders", "language")
