"""Where the folders that ship beside the code are: the pages (`web/`) and the migrations
(`migrations/`). pyproject.toml maps both into the package as `livecommerce.webroot` and
`livecommerce.migrations`, so the import system finds them one way in an editable install of a
checkout and in a wheel."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


@cache
def _package_folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed: install livecommerce (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def web_root() -> Path:
    """The pages' folder: HTML at the top, `js/`, `css/` and `vendor/` below."""
    return _package_folder("livecommerce.webroot")


def migrations_folder() -> Path:
    """Alembic's script location: `env.py`, the template and `versions/`."""
    return _package_folder("livecommerce.migrations")
