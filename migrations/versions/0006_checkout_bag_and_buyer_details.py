"""checkout: the live's bag, buying at list price, buyers' saved details, address access log

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 18:00:00

- room_products: the products a room offers in its live (the bag viewers open);
- order_attempts may answer a tap at a SKU's list price (sku_id, and the room it was tapped in)
  instead of a flash sale's (sale_id), exactly one of the two; outcomes get room for longer codes;
- buyer_details: what a buyer last gave at checkout, to fill in the next one;
- personal_data_access: every staff view or export of buyers' addresses.

Downgrading drops the list-price answers (their orders stay).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "room_products",
        sa.Column("room_id", sa.BigInteger(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_room_products_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_room_products_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", "product_id", name=op.f("pk_room_products")),
    )
    op.create_index(op.f("ix_room_products_product_id"), "room_products", ["product_id"], unique=False)

    op.alter_column("order_attempts", "sale_id", existing_type=sa.BigInteger(), nullable=True)
    op.alter_column(
        "order_attempts", "outcome", existing_type=sa.String(length=16), type_=sa.String(length=32)
    )
    op.add_column("order_attempts", sa.Column("sku_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_order_attempts_sku_id_skus"),
        "order_attempts",
        "skus",
        ["sku_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index(op.f("ix_order_attempts_sku_id"), "order_attempts", ["sku_id"], unique=False)
    op.add_column("order_attempts", sa.Column("room_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_order_attempts_room_id_rooms"),
        "order_attempts",
        "rooms",
        ["room_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_order_attempts_room_id"), "order_attempts", ["room_id"], unique=False)
    op.create_check_constraint(
        op.f("ck_order_attempts_names_one_offer"), "order_attempts", "num_nonnulls(sale_id, sku_id) = 1"
    )

    op.create_table(
        "buyer_details",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_buyer_details_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_buyer_details")),
    )

    op.create_table(
        "personal_data_access",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("order_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_personal_data_access_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_personal_data_access_merchant_id_merchants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_data_access")),
    )
    op.create_index(
        op.f("ix_personal_data_access_actor_id"), "personal_data_access", ["actor_id"], unique=False
    )
    op.create_index(
        op.f("ix_personal_data_access_merchant_id"), "personal_data_access", ["merchant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("personal_data_access")
    op.drop_table("buyer_details")
    op.execute("DELETE FROM order_attempts WHERE sale_id IS NULL")
    op.drop_constraint(op.f("ck_order_attempts_names_one_offer"), "order_attempts", type_="check")
    op.drop_index(op.f("ix_order_attempts_room_id"), table_name="order_attempts")
    op.drop_constraint(op.f("fk_order_attempts_room_id_rooms"), "order_attempts", type_="foreignkey")
    op.drop_column("order_attempts", "room_id")
    op.drop_index(op.f("ix_order_attempts_sku_id"), table_name="order_attempts")
    op.drop_constraint(op.f("fk_order_attempts_sku_id_skus"), "order_attempts", type_="foreignkey")
    op.drop_column("order_attempts", "sku_id")
    op.execute("UPDATE order_attempts SET outcome = left(outcome, 16)")
    op.alter_column(
        "order_attempts", "outcome", existing_type=sa.String(length=32), type_=sa.String(length=16)
    )
    op.alter_column("order_attempts", "sale_id", existing_type=sa.BigInteger(), nullable=False)
    op.drop_index(op.f("ix_room_products_product_id"), table_name="room_products")
    op.drop_table("room_products")
