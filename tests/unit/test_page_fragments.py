"""Pages built from shared fragments: every include names a fragment that exists, and a page
with one comes out whole."""

from __future__ import annotations

import re
from pathlib import Path

from livecommerce.web import pages

WEB = Path(__file__).resolve().parents[2] / "web"
INCLUDE = re.compile(r"<!-- include ([\w-]+) -->")


def test_every_include_names_a_fragment():
    includes = {name for page in WEB.glob("*.html") for name in INCLUDE.findall(page.read_text())}
    assert includes, "no page includes a fragment"
    assert {name for name in includes if not (WEB / "fragments" / f"{name}.html").is_file()} == set()


def test_the_watch_and_replay_pages_carry_the_one_checkout_form():
    for name in ("watch", "replay"):
        page = pages._page(name)
        assert "<!-- include" not in page
        assert page.count('<form id="checkout-form"') == 1
        assert page.count('id="pay-button"') == 1
