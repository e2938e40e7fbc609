"""Alembic's environment, template and revisions. Packaged as `livecommerce.migrations` (see
pyproject.toml), so that `livecommerce.resources` finds this folder in a checkout and in a wheel."""
