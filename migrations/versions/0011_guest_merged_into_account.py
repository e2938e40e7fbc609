"""users.merged_into_id: the account a guest's orders, details and draw entries moved to

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 21:30:00

A guest who signs in to an existing account hands it what the guest had; the guest identity is
retired (its tokens revoked) and remembers the account, so a prize the guest won in a draw that
had already closed (whose published entrants name the guest) is the account's to claim.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("merged_into_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_users_merged_into_id_users"),
        "users",
        "users",
        ["merged_into_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_users_merged_into_id", "users", ["merged_into_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_users_merged_into_id", table_name="users")
    op.drop_constraint(op.f("fk_users_merged_into_id_users"), "users", type_="foreignkey")
    op.drop_column("users", "merged_into_id")
