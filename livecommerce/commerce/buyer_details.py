"""A buyer's details at checkout: who receives the order, how to reach them, and where it goes.

`read_details` is the whole validation, pure: each field trimmed, whitespace collapsed and
control characters dropped; a bad field is refused with its own error code (`invalid_name`,
`invalid_phone`, `invalid_email`, `invalid_address`, `invalid_country`) and names the field.
"""

from __future__ import annotations

import re
from typing import Any

from livecommerce.accounts import normal_email, normal_phone
from livecommerce.errors import AppError

# field -> (most characters, required, the error code of a bad value)
FIELDS: dict[str, tuple[int, bool, str]] = {
    "name": (100, True, "invalid_name"),
    "phone": (40, True, "invalid_phone"),
    "email": (254, False, "invalid_email"),
    "line1": (200, True, "invalid_address"),
    "line2": (200, False, "invalid_address"),
    "city": (100, True, "invalid_address"),
    "region": (100, False, "invalid_address"),
    "postal_code": (20, False, "invalid_address"),
    "country": (2, True, "invalid_country"),
}
_POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _clean(value: str) -> str:
    return " ".join("".join(ch for ch in value if ch.isprintable()).split())


def _refuse(field: str, message: str) -> AppError:
    return AppError(FIELDS[field][2], f"{field}: {message}", details={"field": field})


def read_details(raw: Any) -> dict[str, str]:
    """The buyer's details as stored (every field present, "" when not given), or the error of
    the first bad field."""
    if not isinstance(raw, dict):
        raise AppError("invalid", "buyer details: an object with name, phone, address fields")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise AppError("invalid", f"buyer details: unknown field {unknown[0]!r}")
    details: dict[str, str] = {}
    for field, (longest, required, _code) in FIELDS.items():
        value = raw.get(field, "")
        if not isinstance(value, str):
            raise _refuse(field, "text")
        value = _clean(value)
        if required and not value:
            raise _refuse(field, "required")
        if len(value) > longest:
            raise _refuse(field, f"at most {longest} characters")
        details[field] = value
    try:
        details["phone"] = normal_phone(details["phone"])
        if details["email"]:
            details["email"] = normal_email(details["email"])
    except AppError as exc:
        field = "phone" if exc.code == "invalid_phone" else "email"
        raise AppError(exc.code, exc.message, details={"field": field}) from None
    if details["postal_code"] and not _POSTAL_CODE.fullmatch(details["postal_code"]):
        raise _refuse("postal_code", "letters, digits, spaces and dashes")
    details["country"] = details["country"].upper()
    if not _COUNTRY.fullmatch(details["country"]):
        raise _refuse("country", "a two-letter ISO 3166-1 code, e.g. CN or GB")
    return details
