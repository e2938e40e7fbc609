"""The numbered names a guest is offered in a room when their own is taken."""

from __future__ import annotations

from livecommerce.realtime.names import MAX_NAME_LENGTH, candidates, name_key


def test_names_that_differ_only_in_case_or_spacing_are_one_name() -> None:
    assert name_key("  Ann   Lee ") == name_key("ann lee") == "ann lee"


def test_candidates_are_numbered_then_end_with_the_user_id_and_never_grow_past_the_limit() -> None:
    names = candidates("Ann", 4821)
    assert names[:3] == ["Ann", "Ann 2", "Ann 3"]
    assert names[-1] == "Ann #4821"
    assert len({name_key(name) for name in names}) == len(names)
    long = candidates("x" * MAX_NAME_LENGTH, 9_000_000_000)
    assert all(len(name) <= MAX_NAME_LENGTH for name in long)
    assert long[1].endswith("x 2") and long[-1].endswith("x #9000000000")
