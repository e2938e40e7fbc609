"""livecommerce_require on every database, and stock_version raised by PostgreSQL itself

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 15:10:00.000000

Databases created from an early 0001 lack `livecommerce_require`; it is (re)created here, so
every database at 0002 has it. A trigger raises `flash_sales.stock_version` whenever a column
that clients see in a sale view or stock event changes, so no statement can forget the bump.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Lets one statement refuse to finish when what it relied on changed (an optimistic order batch
# whose sale moved meanwhile): the whole statement rolls back with serialization_failure.
REQUIRE_FUNCTION = """
CREATE OR REPLACE FUNCTION livecommerce_require(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = message;
    END IF;
    RETURN true;
END
$$
"""

# The columns of a sale that clients see (sale views and `stock` events); a change to any of
# them makes a newer version, which receivers keep over any older one.
WATCHED = ("available", "allocated", "state", "sale_price_minor", "per_user_limit", "starts_at", "ends_at")

BUMP_FUNCTION = """
CREATE OR REPLACE FUNCTION flash_sales_bump_stock_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.stock_version := OLD.stock_version + 1;
    RETURN NEW;
END
$$
"""

BUMP_TRIGGER = (
    "CREATE TRIGGER flash_sales_stock_version BEFORE UPDATE ON flash_sales FOR EACH ROW "
    "WHEN (({old}) IS DISTINCT FROM ({new})) "
    "EXECUTE FUNCTION flash_sales_bump_stock_version()"
).format(
    old=", ".join(f"OLD.{column}" for column in WATCHED),
    new=", ".join(f"NEW.{column}" for column in WATCHED),
)


def upgrade() -> None:
    op.execute(REQUIRE_FUNCTION)
    op.execute(BUMP_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS flash_sales_stock_version ON flash_sales")
    op.execute(BUMP_TRIGGER)


def downgrade() -> None:
    # livecommerce_require belongs to 0001's schema (its downgrade drops it)
    op.execute("DROP TRIGGER IF EXISTS flash_sales_stock_version ON flash_sales")
    op.execute("DROP FUNCTION IF EXISTS flash_sales_bump_stock_version()")
