"""The order state machine and the tracking CSV parser, without I/O."""

from __future__ import annotations

import pytest

from livecommerce.commerce.lifecycle import STATUSES, TRANSITIONS, transition
from livecommerce.commerce.tracking import MAX_ROWS, parse_tracking_csv
from livecommerce.errors import AppError
from livecommerce.realtime.event_types import order_action_event


def test_a_refused_action_names_its_own_code_and_the_orders_status():
    with pytest.raises(AppError) as refused:
        transition("ship", "shipped", "operator")
    assert refused.value.code == "not_shippable"
    assert refused.value.details == {"status": "shipped", "action": "ship"}


def test_an_action_of_the_other_side_is_forbidden_whatever_the_status():
    with pytest.raises(AppError) as refused:
        transition("ship", "paid", "buyer")
    assert refused.value.code == "forbidden"
    with pytest.raises(AppError) as refused:
        transition("request_return", "delivered", "operator")
    assert refused.value.code == "forbidden"


def test_a_refused_return_goes_back_to_the_status_it_was_asked_from():
    assert transition("refuse_return", "return_requested", "operator", back_to="shipped") == "shipped"
    with pytest.raises(ValueError):
        transition("refuse_return", "return_requested", "operator")


def test_every_transition_starts_and_ends_in_a_known_status_and_every_user_action_has_an_event():
    for rule in TRANSITIONS.values():
        assert rule.sources <= set(STATUSES)
        assert rule.target is None or rule.target in STATUSES
        if rule.actors - {"system"}:
            assert order_action_event(rule.action).startswith("order.")


def test_the_csv_parser_checks_each_row_on_its_own():
    rows = parse_tracking_csv(
        b"\xef\xbb\xbfTracking_Number,Order_ID,Carrier\r\n"
        b"SF1234567890,7,SF Express\r\n"
        b",,\r\n"
        b"SF1,8,SF Express\r\n"
        b"SF1234567890,-3,SF Express\r\n"
        b"SF1234567890,9\r\n"
    )
    assert [(r.line, r.order_id, r.error and r.error.message.split(":")[0]) for r in rows] == [
        (2, 7, None),
        (4, 8, "tracking_number"),
        (5, None, "order_id"),
        (6, 9, "carrier"),
    ]
    assert rows[0].carrier == "SF Express" and rows[0].tracking_number == "SF1234567890"


@pytest.mark.parametrize(
    "data",
    [
        b"order_id,carrier\n1,x\n",
        b"\xff\xfe",
        b"",
        ("order_id,carrier,tracking_number\n" + "1,x,ABCD\n" * (MAX_ROWS + 1)).encode(),
    ],
)
def test_a_file_that_is_not_a_tracking_csv_is_refused_whole(data):
    with pytest.raises(AppError) as refused:
        parse_tracking_csv(data)
    assert refused.value.code == "invalid"
