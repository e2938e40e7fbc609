"""The room events' type names, one constant each: what clients receive in `{"type": ...}` and
what docs/protocol.md lists. Event types live here alone, apart from permissions and audit
actions (which may share a spelling but are another namespace)."""

from __future__ import annotations

from typing import Any, Final

CHAT_MESSAGE: Final = "chat.message"
CHAT_DELETED: Final = "chat.deleted"
USER_MUTED: Final = "user.muted"
USER_UNMUTED: Final = "user.unmuted"
USER_BANNED: Final = "user.banned"
USER_UNBANNED: Final = "user.unbanned"
ROOM_SETTINGS: Final = "room.settings"
PRESENCE: Final = "presence"
SNAPSHOT: Final = "snapshot"
RESUMED: Final = "resumed"
LIKES: Final = "likes"
FOLLOWERS: Final = "followers"

CARD_PINNED: Final = "card.pinned"
CARD_UNPINNED: Final = "card.unpinned"
BAG_UPDATED: Final = "bag.updated"

SALE_SCHEDULED: Final = "sale.scheduled"
SALE_LIVE: Final = "sale.live"
SALE_SOLD_OUT: Final = "sale.sold_out"
SALE_ENDED: Final = "sale.ended"
SALE_RESTOCKED: Final = "sale.restocked"
SALE_REPRICED: Final = "sale.repriced"
SALE_UPDATED: Final = "sale.updated"
STOCK: Final = "stock"
SKU_STOCK: Final = "sku.stock"
ORDER_UPDATED: Final = "order.updated"
ORDER_FEED: Final = "order.feed"
ORDER_CANCELLED: Final = "order.cancelled"
ORDER_REFUNDED: Final = "order.refunded"
ORDER_SHIPPED: Final = "order.shipped"
ORDER_DELIVERED: Final = "order.delivered"
ORDER_CLOSED: Final = "order.closed"
ORDER_RETURN_REQUESTED: Final = "order.return_requested"
ORDER_RETURN_ACCEPTED: Final = "order.return_accepted"
ORDER_RETURN_REFUSED: Final = "order.return_refused"

DRAW_STARTED: Final = "draw.started"
DRAW_ENTERED: Final = "draw.entered"
DRAW_ENTRANTS: Final = "draw.entrants"
DRAW_CLOSED: Final = "draw.closed"
DRAW_WON: Final = "draw.won"

STREAM_LIVE: Final = "stream.live"
STREAM_ENDED: Final = "stream.ended"

LIVE_OVER_REASONS: Final = frozenset({"publisher_left", "publisher_lost"})
"""`stream.ended` reasons that end the live itself: the publisher left, or dropped and did not
return within the grace period. A takeover (`replaced`) or a server shutdown (`server_shutdown`)
does not: the publisher goes on, on this or another node."""


def ends_the_live(stream_ended: dict[str, Any]) -> bool:
    """Whether a `stream.ended` event's data says the live is over (its sales end with it)."""
    return stream_ended.get("reason") in LIVE_OVER_REASONS


_SALE_STATE_EVENTS: Final = {
    "scheduled": SALE_SCHEDULED,
    "live": SALE_LIVE,
    "sold_out": SALE_SOLD_OUT,
    "ended": SALE_ENDED,
}


def sale_state_event(state: str) -> str:
    """The event announcing that a sale entered `state` (scheduled, live, sold_out, ended)."""
    return _SALE_STATE_EVENTS[state]


_ORDER_ACTION_EVENTS: Final = {
    "cancel": ORDER_CANCELLED,
    "refund": ORDER_REFUNDED,
    "ship": ORDER_SHIPPED,
    "deliver": ORDER_DELIVERED,
    "close": ORDER_CLOSED,
    "request_return": ORDER_RETURN_REQUESTED,
    "accept_return": ORDER_RETURN_ACCEPTED,
    "refuse_return": ORDER_RETURN_REFUSED,
}


def order_action_event(action: str) -> str:
    """The event telling the buyer that an after-payment action was taken on their order
    (reservations, payments and unpaid closes are told with `order.updated`)."""
    return _ORDER_ACTION_EVENTS[action]
