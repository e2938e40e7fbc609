"""Mail to buyers about their orders, composed without I/O: the receipt when an order is paid
and the confirmation of a refund, in the buyer's language (English and Simplified Chinese, as
the pages), plain text with a simple HTML alternative, ready to hand to the SMTP server.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any, Final

RECEIPT: Final = "receipt"
REFUND: Final = "refund"
KINDS: Final = (RECEIPT, REFUND)
FALLBACK_LANGUAGE: Final = "en"

# ISO 4217 currencies whose minor unit is not a hundredth
_EXPONENTS: Final = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "receipt.subject": "{merchant}: your order #{order} is paid",
        "receipt.intro": "Thank you for your order from {merchant}. We have your payment and will send you the goods.",
        "refund.subject": "{merchant}: refund for your order #{order}",
        "refund.intro": "We refunded {amount} for your order #{order} from {merchant}. It may take a few days to show on your statement.",
        "order": "Order #{order}",
        "line": "{product} · {variant} × {quantity} at {unit}: {amount}",
        "total": "Total: {amount}",
        "ship_to": "Shipping to:",
        "phone": "Phone: {phone}",
        "orders_link": "Your orders: {url}",
        "signature": "{merchant}",
    },
    "zh-CN": {
        "receipt.subject": "{merchant}：订单 #{order} 已付款",
        "receipt.intro": "感谢你在 {merchant} 下单。我们已收到付款，将尽快为你发货。",
        "refund.subject": "{merchant}：订单 #{order} 已退款",
        "refund.intro": "{merchant} 已为订单 #{order} 退款 {amount}。款项可能需要几天才能到账。",
        "order": "订单 #{order}",
        "line": "{product} · {variant} × {quantity}，单价 {unit}：{amount}",
        "total": "合计：{amount}",
        "ship_to": "收货地址：",
        "phone": "电话：{phone}",
        "orders_link": "查看你的订单：{url}",
        "signature": "{merchant}",
    },
}


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What a message about one order says: read from the order, its SKU and its merchant."""

    order_id: int
    merchant: str
    product: str
    variant: str
    quantity: int
    unit_price_minor: int
    amount_minor: int
    currency: str
    shipping: dict[str, Any]
    language: str | None


@dataclass(frozen=True, slots=True)
class Letter:
    recipient: str
    message_id: str
    message: str
    """The whole message as it goes out (RFC 5322, CRLF line ends, ASCII)."""


def pick_language(wanted: str | None) -> str:
    """The language of ours closest to `wanted` (a BCP 47 tag): exactly, else by its primary
    subtag ("zh", "zh-Hans-CN" find zh-CN), else English; as the pages choose theirs."""
    if wanted:
        for code in TEXTS:
            if code.lower() == wanted.lower():
                return code
        primary = wanted.split("-")[0].lower()
        for code in TEXTS:
            if code.split("-")[0].lower() == primary:
                return code
    return FALLBACK_LANGUAGE


def money(minor: int, currency: str) -> str:
    """`19.99 USD`, `1500 JPY`: the amount in the currency's own unit, then its code."""
    exponent = _EXPONENTS.get(currency.upper(), 2)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    amount = f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{amount} {currency.upper()}"


def address_lines(shipping: dict[str, Any]) -> list[str]:
    """Where the order goes, one line each, as the buyer gave it."""
    place = " ".join(part for part in (shipping.get("postal_code"), shipping.get("city")) if part)
    lines = [shipping.get("name"), shipping.get("line1"), shipping.get("line2"), place]
    lines += [shipping.get("region"), shipping.get("country")]
    return [line for line in lines if line]


def compose(
    kind: str,
    facts: OrderFacts,
    *,
    mail_from: str,
    public_url: str,
    now: datetime,
    refunded_minor: int = 0,
) -> Letter | None:
    """The message of `kind` about the order, or None when the buyer gave no email address."""
    recipient = str(facts.shipping.get("email") or "")
    if not recipient:
        return None
    words = TEXTS[pick_language(facts.language)]

    def say(key: str, **values: Any) -> str:
        return words[key].format(merchant=facts.merchant, order=facts.order_id, **values)

    orders_url = f"{public_url.rstrip('/')}/orders"
    intro = say(f"{kind}.intro", amount=money(refunded_minor, facts.currency))
    line = say(
        "line",
        product=facts.product,
        variant=facts.variant,
        quantity=facts.quantity,
        unit=money(facts.unit_price_minor, facts.currency),
        amount=money(facts.amount_minor, facts.currency),
    )
    phone = str(facts.shipping.get("phone") or "")
    paragraphs = [
        [intro],
        [say("order"), line, say("total", amount=money(facts.amount_minor, facts.currency))],
        [say("ship_to"), *address_lines(facts.shipping), *([say("phone", phone=phone)] if phone else [])],
        [say("orders_link", url=orders_url)],
        [say("signature")],
    ]
    message = EmailMessage()
    domain = mail_from.rpartition("@")[2]
    message_id = make_msgid(idstring=f"{kind}.{facts.order_id}", domain=domain)
    message["Subject"] = say(f"{kind}.subject")
    message["From"] = Address(display_name=facts.merchant, addr_spec=mail_from)
    message["To"] = Address(display_name=str(facts.shipping.get("name") or ""), addr_spec=recipient)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "\n\n".join("\n".join(paragraph) for paragraph in paragraphs) + "\n", cte="quoted-printable"
    )
    message.add_alternative(_html(paragraphs, orders_url), subtype="html", cte="quoted-printable")
    message["Content-Language"] = pick_language(facts.language)  # after the content: it clears Content-*
    return Letter(
        recipient=recipient, message_id=message_id, message=message.as_bytes(policy=SMTP).decode("ascii")
    )


def _html(paragraphs: list[list[str]], orders_url: str) -> str:
    """The same paragraphs as simple HTML, the link to the orders page clickable."""
    link = html.escape(orders_url)
    body = "\n".join(
        "<p>"
        + "<br>\n".join(html.escape(line).replace(link, f'<a href="{link}">{link}</a>') for line in lines)
        + "</p>"
        for lines in paragraphs
    )
    return f'<!doctype html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>\n'
