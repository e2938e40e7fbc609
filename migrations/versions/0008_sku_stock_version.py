"""A SKU's free stock carries a version raised by PostgreSQL itself

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 19:00:00

`skus.stock_version` goes up whenever `on_hand` or `reserved` changes (a trigger, so no
statement can forget it). Free-stock events (`sku.stock`) and product cards carry it, and
receivers keep the highest version of each SKU, as they do for a sale's stock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP_FUNCTION = """
CREATE OR REPLACE FUNCTION skus_bump_stock_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.stock_version := OLD.stock_version + 1;
    RETURN NEW;
END
$$
"""

BUMP_TRIGGER = (
    "CREATE TRIGGER skus_stock_version BEFORE UPDATE ON skus FOR EACH ROW "
    "WHEN ((OLD.on_hand, OLD.reserved) IS DISTINCT FROM (NEW.on_hand, NEW.reserved)) "
    "EXECUTE FUNCTION skus_bump_stock_version()"
)


def upgrade() -> None:
    op.add_column("skus", sa.Column("stock_version", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(BUMP_FUNCTION)
    op.execute(BUMP_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS skus_stock_version ON skus")
    op.execute("DROP FUNCTION IF EXISTS skus_bump_stock_version()")
    op.drop_column("skus", "stock_version")
