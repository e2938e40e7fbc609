"""Mail about orders, composed without I/O: languages, money, the address, headers, retry waits."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime

from livecommerce.commerce.mail_outbox import LONGEST_WAIT_S, retry_wait
from livecommerce.commerce.receipts import RECEIPT, REFUND, OrderFacts, compose, money, pick_language

FACTS = OrderFacts(
    order_id=42,
    merchant="Tea & Co",
    product="Green tea",
    variant="250 g",
    quantity=3,
    unit_price_minor=1250,
    amount_minor=3750,
    currency="CNY",
    shipping={
        "name": "王芳",
        "phone": "+8613900001234",
        "email": "wang@example.com",
        "line1": "文一路 12 号",
        "line2": "",
        "city": "杭州",
        "region": "浙江",
        "postal_code": "310012",
        "country": "CN",
    },
    language="zh-CN",
)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def read(message: str) -> email.message.EmailMessage:
    return email.message_from_string(message, policy=email.policy.default)


def test_the_language_is_the_nearest_of_ours_as_the_pages_choose():
    assert pick_language("zh-CN") == "zh-CN"
    assert pick_language("zh-hans-cn") == "zh-CN"
    assert pick_language("zh") == "zh-CN"
    assert pick_language("en-GB") == "en"
    assert pick_language("fr") == "en"
    assert pick_language(None) == "en"


def test_money_is_written_in_the_currency_unit():
    assert money(1999, "usd") == "19.99 USD"
    assert money(5, "EUR") == "0.05 EUR"
    assert money(1500, "JPY") == "1500 JPY"
    assert money(1234, "KWD") == "1.234 KWD"
    assert money(0, "USD") == "0.00 USD"


def test_a_chinese_receipt_has_the_order_its_line_total_and_address_in_ascii_on_the_wire():
    letter = compose(
        RECEIPT, FACTS, mail_from="orders@tea.example", public_url="https://tea.example/", now=NOW
    )
    assert letter is not None and letter.recipient == "wang@example.com"
    assert letter.message.isascii() and "\r\n" in letter.message
    message = read(letter.message)
    assert message["Subject"] == "Tea & Co：订单 #42 已付款"
    assert message["From"] == "Tea & Co <orders@tea.example>"
    assert message["To"] == "王芳 <wang@example.com>"
    assert message["Date"] == "Sun, 29 Nov 2026 12:00:00 +0000"
    assert message["Message-ID"].strip() == letter.message_id and letter.message_id.endswith("@tea.example>")
    assert message["Content-Language"] == "zh-CN"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Green tea · 250 g × 3，单价 12.50 CNY：37.50 CNY" in text
    assert "合计：37.50 CNY" in text
    assert "王芳\n文一路 12 号\n310012 杭州\n浙江\nCN\n电话：+8613900001234" in text
    assert "https://tea.example/orders" in text
    html = message.get_body(("html",)).get_content()
    assert "Tea &amp; Co" in html and '<a href="https://tea.example/orders">' in html


def test_a_refund_says_how_much_went_back():
    facts = dataclasses.replace(FACTS, language="en-US")
    letter = compose(
        REFUND,
        facts,
        mail_from="orders@tea.example",
        public_url="https://tea.example",
        now=NOW,
        refunded_minor=3750,
    )
    assert letter is not None
    message = read(letter.message)
    assert message["Subject"] == "Tea & Co: refund for your order #42"
    assert (
        "We refunded 37.50 CNY for your order #42 from Tea & Co."
        in message.get_body(("plain",)).get_content()
    )


def test_no_email_address_no_letter():
    facts = dataclasses.replace(FACTS, shipping={"name": "A"})
    assert (
        compose(RECEIPT, facts, mail_from="orders@tea.example", public_url="https://tea.example", now=NOW)
        is None
    )


def test_retries_wait_twice_as_long_each_time_up_to_an_hour():
    assert [retry_wait(n, 30) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_wait(20, 30) == LONGEST_WAIT_S
