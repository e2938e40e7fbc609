"""The order state machine, pure: which action moves an order from which status to which, who
takes it, and the error a refused action gets. Every path that changes an order's status asks it.

    reserved ─pay─> paid ─ship─> shipped ─deliver─> delivered ─close─> closed
       │             │              │                   │
       │ expire      │ cancel       └──request_return───┴─> return_requested
       │ cancel      │ (refund,                                 │ accept_return (refund) → refunded
       │ refund      │  units back)                             │ refuse_return → back to where it was
       v             v
    expired / cancelled / refunded (an operator's or the provider's refund)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from livecommerce.errors import AppError

BUYER: Final = "buyer"
OPERATOR: Final = "operator"
SYSTEM: Final = "system"

SOLD_STATUSES: Final = ("paid", "shipped", "delivered", "closed", "return_requested")
"""Statuses of an order whose money the merchant holds: counted as sold."""
STATUSES: Final = ("reserved", "expired", "cancelled", "refunded", *SOLD_STATUSES)
RETURN_GOES_BACK: Final = ("shipped", "delivered")
"""Where a refused return request puts the order back: the status it was asked from."""


@dataclass(frozen=True, slots=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str | None
    """None: the status the order had before (a refused return goes back to it)."""
    actors: frozenset[str]
    refused: str
    """The error code when the order is in a status the action does not start from."""


def _t(
    action: str, sources: tuple[str, ...], target: str | None, actors: tuple[str, ...], refused: str
) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(actors), refused)


TRANSITIONS: Final = {
    t.action: t
    for t in (
        # a late payment may still take its units back after the reservation expired or was cancelled
        _t("pay", ("reserved", "expired", "cancelled"), "paid", (SYSTEM,), "not_payable"),
        _t("expire", ("reserved",), "expired", (SYSTEM,), "not_cancellable"),
        _t("cancel", ("reserved", "paid"), "cancelled", (BUYER, OPERATOR), "not_cancellable"),
        _t("refund", ("paid", "shipped", "delivered"), "refunded", (OPERATOR,), "not_refundable"),
        # the provider says the money went back (a refund made in Stripe's dashboard, or of a late
        # payment that found no units); a refund this server made was recorded with its action
        _t(
            "provider_refund",
            ("reserved", "expired", "cancelled", *SOLD_STATUSES),
            "refunded",
            (SYSTEM,),
            "not_refundable",
        ),
        _t("ship", ("paid",), "shipped", (OPERATOR,), "not_shippable"),
        _t("deliver", ("shipped",), "delivered", (OPERATOR,), "not_deliverable"),
        _t("close", ("delivered",), "closed", (OPERATOR,), "not_closable"),
        _t("request_return", RETURN_GOES_BACK, "return_requested", (BUYER,), "not_returnable"),
        _t("accept_return", ("return_requested",), "refunded", (OPERATOR,), "no_return_request"),
        _t("refuse_return", ("return_requested",), None, (OPERATOR,), "no_return_request"),
    )
}

_DESCRIBED: Final = {
    "not_payable": "can no longer be paid",
    "not_cancellable": "can only be cancelled before it ships",
    "not_refundable": "can only be refunded once paid, and once",
    "not_shippable": "can only ship once paid, and once",
    "not_deliverable": "can only be delivered once shipped",
    "not_closable": "can only be closed once delivered",
    "not_returnable": "can only be returned once shipped or delivered, and while no request is open",
    "no_return_request": "has no open return request",
}


def allows(action: str, status: str) -> bool:
    """Whether `action` starts from `status` (for paths that ignore what no longer applies, such
    as a provider event arriving late)."""
    return status in TRANSITIONS[action].sources


def transition(action: str, status: str, actor: str, *, back_to: str | None = None) -> str:
    """The status `action` moves an order in `status` to, taken by `actor` (buyer, operator or
    system); a refused action raises its precise code, with the order's status in the details.

    `back_to`: for an action without a fixed target, the status the order goes back to.
    """
    rule = TRANSITIONS[action]
    if actor not in rule.actors:
        raise AppError("forbidden", f"a {actor} may not {action.replace('_', ' ')} an order")
    if status not in rule.sources:
        raise AppError(
            rule.refused,
            f"the order is {status.replace('_', ' ')}: it {_DESCRIBED[rule.refused]}",
            details={"status": status, "action": action},
        )
    target = rule.target if rule.target is not None else back_to
    if target is None:
        raise ValueError(f"{action} needs the status to go back to")
    return target
