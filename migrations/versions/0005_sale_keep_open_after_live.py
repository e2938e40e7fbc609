"""flash_sales.keep_open_after_live: a sale the merchant keeps open when the live ends

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:00:00

The flag is part of the sale view, so the stock_version trigger (0002) now watches it too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED_BEFORE = (
    "available",
    "allocated",
    "state",
    "sale_price_minor",
    "per_user_limit",
    "starts_at",
    "ends_at",
)
WATCHED = (*WATCHED_BEFORE, "keep_open_after_live")


def _bump_trigger(columns: Sequence[str]) -> str:
    return (
        "CREATE TRIGGER flash_sales_stock_version BEFORE UPDATE ON flash_sales FOR EACH ROW "
        "WHEN (({old}) IS DISTINCT FROM ({new})) "
        "EXECUTE FUNCTION flash_sales_bump_stock_version()"
    ).format(
        old=", ".join(f"OLD.{column}" for column in columns),
        new=", ".join(f"NEW.{column}" for column in columns),
    )


def upgrade() -> None:
    op.add_column(
        "flash_sales",
        sa.Column("keep_open_after_live", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.execute("DROP TRIGGER IF EXISTS flash_sales_stock_version ON flash_sales")
    op.execute(_bump_trigger(WATCHED))


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS flash_sales_stock_version ON flash_sales")
    op.execute(_bump_trigger(WATCHED_BEFORE))
    op.drop_column("flash_sales", "keep_open_after_live")
