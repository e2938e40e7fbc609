"""Wire the commerce plane into the app: order service, payments, the sale clock, the expiry
sweeper, the refund retrier, HTTP routes and the room WebSocket commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from livecommerce.appkeys import ENGINE, HUB, METRICS, SESSION_FACTORY, SETTINGS
from livecommerce.commerce import api, cards, commands
from livecommerce.commerce.appkeys import COMMERCE_EVENTS, ORDERS, PAYMENTS
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.expiry import ExpirySweeper
from livecommerce.commerce.orders import OrderMetrics, OrderService
from livecommerce.commerce.payments import Payments
from livecommerce.commerce.sales import SaleClock, SaleDirectory


def setup(app: web.Application) -> None:
    """Needs the realtime plane's hub (set up first); components start once the database is up."""
    app.add_routes(api.routes)
    commands.register(app[HUB])
    cards.register(app[HUB])

    async def running(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        engine = app[ENGINE]
        events = CommerceEvents(engine)
        events.attach(app[HUB].publish)
        metrics = OrderMetrics(app[METRICS])
        orders = OrderService(
            engine,
            app[SESSION_FACTORY],
            SaleDirectory(engine),
            events,
            ttl_s=settings.reservation_ttl_seconds,
            batching=settings.order_batching,
            window_s=settings.order_batch_window_ms / 1000,
            metrics=metrics,
        )
        payments = Payments(settings, engine, app[SESSION_FACTORY], orders)
        app[COMMERCE_EVENTS], app[ORDERS], app[PAYMENTS] = events, orders, payments
        loops = [
            asyncio.create_task(SaleClock(engine, events).run(), name="sale-clock"),
            asyncio.create_task(ExpirySweeper(engine, orders).run(), name="reservation-expiry"),
            asyncio.create_task(payments.run_refunds(), name="refund-retry"),
        ]
        yield
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await orders.close()
        await events.close()
        await payments.close()

    app.cleanup_ctx.append(running)
