"""Buyer details and sign-up logins are checked field by field, each with its own error code."""

from __future__ import annotations

import pytest

from livecommerce.accounts import normal_login, normal_phone
from livecommerce.commerce.buyer_details import read_details
from livecommerce.errors import AppError

GOOD = {"name": "Ann", "phone": "020 7946 0000", "line1": "1 High St", "city": "London", "country": "gb"}


def test_details_are_trimmed_and_every_field_is_present():
    details = read_details({**GOOD, "name": "  Ann \u0007  Lee ", "postal_code": " SW1A 1AA "})
    assert details == {
        "name": "Ann Lee",
        "phone": "02079460000",
        "email": "",
        "line1": "1 High St",
        "line2": "",
        "city": "London",
        "region": "",
        "postal_code": "SW1A 1AA",
        "country": "GB",
    }


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"name": ""}, "invalid_name", "name"),
        ({"name": None}, "invalid_name", "name"),
        ({"phone": "12345"}, "invalid_phone", "phone"),
        ({"phone": "+1 (555) 0100 ext 2"}, "invalid_phone", "phone"),
        ({"phone": "1" * 16}, "invalid_phone", "phone"),
        ({"email": "a@b"}, "invalid_email", "email"),
        ({"email": "a b@example.com"}, "invalid_email", "email"),
        ({"line1": " "}, "invalid_address", "line1"),
        ({"line2": "x" * 201}, "invalid_address", "line2"),
        ({"postal_code": "-123"}, "invalid_address", "postal_code"),
        ({"country": "GBR"}, "invalid_country", "country"),
        ({"country": ""}, "invalid_country", "country"),
    ],
)
def test_a_bad_field_is_refused_with_its_code_and_name(change, code, field):
    with pytest.raises(AppError) as refused:
        read_details({**GOOD, **change})
    assert (refused.value.code, refused.value.details) == (code, {"field": field})


@pytest.mark.parametrize("raw", [None, [], "Ann", {**GOOD, "fax": "1"}])
def test_anything_but_an_object_of_known_fields_is_invalid(raw):
    with pytest.raises(AppError) as refused:
        read_details(raw)
    assert refused.value.code == "invalid"


def test_a_phone_login_is_the_same_however_it_is_typed():
    assert normal_phone("+86 138-0013 (8000)") == "+8613800138000"
    assert normal_login(" +86 138 0013 8000 ") == normal_login("+8613800138000") == "+8613800138000"
    assert normal_login("Ann@Example.COM ") == "ann@example.com"
    assert normal_login("operator-1") == "operator-1"
