"""Typed app keys of the commerce plane's components, created in `commerce.setup`."""

from __future__ import annotations

from aiohttp import web

from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.payments import Payments

ORDERS = web.AppKey("orders", OrderService)
PAYMENTS = web.AppKey("payments", Payments)
COMMERCE_EVENTS = web.AppKey("commerce_events", CommerceEvents)
