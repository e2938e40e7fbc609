"""The pages' message files: every language says every message the pages use, with the same
placeholders, and every error code the server can send has words in every language."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from livecommerce.commerce.lifecycle import STATUSES, TRANSITIONS
from livecommerce.errors import HTTP_STATUS

WEB = Path(__file__).resolve().parents[2] / "web"
MESSAGES = WEB / "i18n"
LANGUAGES = json.loads((MESSAGES / "languages.json").read_text(encoding="utf-8"))
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# keys the pages build from a value: `t(`badge.${state}`)` and the like
BUILT_KEYS = {
    "badge.": ("connecting", "live", "reconnecting", "ended", "off", "off_air"),
    "order.": STATUSES,
    "orders.event.": tuple(TRANSITIONS),
    "draw.rule.": ("keyword", "watching", "ordered"),
    "sale.state.": ("scheduled", "live", "sold_out", "ended"),
    "console.confirm_": ("cancel", "refund"),
    "buy.": ("sold_out", "limit_exceeded", "not_started", "ended", "insufficient_stock", "not_offered"),
    "chat.badge.": ("anchor", "staff"),
}


def messages(code: str) -> dict[str, str | dict[str, str]]:
    return json.loads((MESSAGES / f"{code}.json").read_text(encoding="utf-8"))


def placeholders(text: str | dict[str, str]) -> set[str]:
    forms = text.values() if isinstance(text, dict) else [text]
    return {name for form in forms for name in PLACEHOLDER.findall(form)} - {"count"}


def keys_in_pages() -> set[str]:
    keys: set[str] = set()
    for path in [*WEB.glob("*.html"), *WEB.glob("fragments/*.html"), *WEB.glob("js/*.js")]:
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'data-i18n="([^"]+)"', text))
        for attributes in re.findall(r'data-i18n-attr="([^"]+)"', text):
            keys |= {pair.split("=")[1].strip() for pair in attributes.split(";")}
        keys |= set(re.findall(r'\bt\("([^"]+)"', text))
        keys |= set(re.findall(r'i18n: "([^"]+)"', text))
    keys |= {prefix + name for prefix, names in BUILT_KEYS.items() for name in names}
    return keys


def test_english_has_every_message_the_pages_use() -> None:
    assert sorted(keys_in_pages() - messages("en").keys()) == []


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_each_language_has_the_same_messages_and_placeholders_as_english(code: str) -> None:
    english, other = messages("en"), messages(code)
    assert sorted(english.keys() ^ other.keys()) == []
    differ = [key for key in english if placeholders(english[key]) != placeholders(other[key])]
    assert differ == []


@pytest.mark.parametrize("code", sorted(LANGUAGES))
def test_every_error_code_has_words_in_each_language(code: str) -> None:
    missing = sorted(c for c in HTTP_STATUS if f"error.{c}" not in messages(code))
    assert missing == []
