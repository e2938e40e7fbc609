"""Input shapes shared by every surface: database ids, whole numbers from URLs, text without NUL.

Ids are PostgreSQL `bigint`s, so a number past 2**63 - 1 is refused here as `invalid` instead of
reaching the database; a NUL character cannot be stored in PostgreSQL text at all.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, TypeAdapter, ValidationError

from livecommerce.errors import AppError

MAX_ID = 2**63 - 1
MIN_BIGINT = -(2**63)

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A row id in a JSON body or a room command: a whole number from 1 to 2**63 - 1."""

_STRICT_ID = TypeAdapter(Annotated[Id, Field(strict=True)])


def _digits(raw: str) -> bool:
    return raw.isascii() and raw.isdigit()


def int_param(request: web.Request, name: str) -> int:
    """A numeric path segment: `not_found` when it is not a number, `invalid` past bigint."""
    raw = request.match_info.get(name, "")
    if not _digits(raw):
        raise AppError("not_found", f"{name} must be a number")
    value = int(raw)
    if value > MAX_ID:
        raise AppError("invalid", f"{name}: at most {MAX_ID}")
    return value


def file_id(request: web.Request, name: str) -> int:
    """A numeric path segment of a file URL (HLS, recordings), not the API: anything that is not a
    valid id is simply a file that does not exist."""
    try:
        return int_param(request, name)
    except AppError:
        raise AppError("not_found", "no such file") from None


def query_int(
    request: web.Request, name: str, default: int | None = None, *, minimum: int = 0, maximum: int = MAX_ID
) -> int | None:
    """A whole number from the query string, within [minimum, maximum]; `default` when absent."""
    raw = request.query.get(name, "")
    if raw == "":
        return default
    negative = raw.startswith("-")
    digits = raw[1:] if negative else raw
    if not _digits(digits) or len(digits) > 20:
        raise AppError("invalid", f"{name}: a whole number from {minimum} to {maximum}")
    value = -int(digits) if negative else int(digits)
    if not minimum <= value <= maximum:
        raise AppError("invalid", f"{name}: a whole number from {minimum} to {maximum}")
    return value


def optional_id(data: dict[str, Any], name: str) -> int | None:
    """An id field of a room command's data, or None when absent; `invalid` when it is not one."""
    value = data.get(name)
    if value is None:
        return None
    try:
        return _STRICT_ID.validate_python(value)
    except ValidationError:
        raise AppError("invalid", f"{name}: a whole number from 1 to {MAX_ID}") from None


def nul_path(value: Any, where: str = "") -> str | None:
    """Where in a decoded JSON value a string (or key) holds a NUL character, or None."""
    if isinstance(value, str):
        return (where or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                return where or "body"
            found = nul_path(item, inner)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


def refuse_nul(value: Any) -> None:
    """Raise `invalid` when any text in a decoded JSON value holds a NUL character."""
    where = nul_path(value)
    if where is not None:
        raise AppError("invalid", f"{where.replace(chr(0), '')}: text must not contain NUL characters")
