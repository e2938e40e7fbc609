"""Commerce plane: catalog, the live's bag, inventory, flash sales, orders, checkout, payments,
fulfilment, prize orders, and mail to buyers about their orders.

`install` builds the plane's services, adds its HTTP routes and room commands, and runs its
background loops (the sale clock, reservation expiry, refund retries, the mail sender) while the
app runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from livecommerce.commerce import commands
from livecommerce.commerce.address_access import AddressAccess
from livecommerce.commerce.api import CommerceApi
from livecommerce.commerce.bag import Bag
from livecommerce.commerce.cards import Cards
from livecommerce.commerce.catalog import Catalog
from livecommerce.commerce.checkout import Checkout
from livecommerce.commerce.checkout_api import CheckoutApi
from livecommerce.commerce.dashboard import Dashboard
from livecommerce.commerce.events import CommerceEvents
from livecommerce.commerce.expiry import ExpirySweeper
from livecommerce.commerce.fulfilment import OrderLifecycle
from livecommerce.commerce.fulfilment_api import FulfilmentApi
from livecommerce.commerce.inventory import Inventory
from livecommerce.commerce.mail_outbox import MailMetrics, MailOutbox
from livecommerce.commerce.order_metrics import OrderMetrics
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.payments import Payments
from livecommerce.commerce.sale_service import SaleService
from livecommerce.commerce.sales import SaleClock, SaleDirectory
from livecommerce.config import Settings
from livecommerce.db.engine import Database
from livecommerce.realtime.event_types import STREAM_ENDED
from livecommerce.realtime.hub import Hub


@dataclass(frozen=True, slots=True)
class Commerce:
    """The plane's services, as `install` built them."""

    events: CommerceEvents
    orders: OrderService
    payments: Payments
    lifecycle: OrderLifecycle
    catalog: Catalog
    inventory: Inventory
    sales: SaleService
    dashboard: Dashboard
    bag: Bag
    checkout: Checkout
    addresses: AddressAccess
    mail: MailOutbox


def install(
    app: web.Application, settings: Settings, db: Database, hub: Hub, metrics: CollectorRegistry
) -> Commerce:
    """Build the services on `db`, publishing into rooms through `hub`; nothing connects until used."""
    engine, sessions = db.engine, db.session_factory
    events = CommerceEvents(engine, hub.publish)
    directory = SaleDirectory(engine)
    orders = OrderService(
        engine,
        sessions,
        directory,
        events,
        ttl_s=settings.reservation_ttl_seconds,
        batching=settings.order_batching,
        window_s=settings.order_batch_window_ms / 1000,
        metrics=OrderMetrics(metrics),
    )
    mail = MailOutbox(settings, engine, MailMetrics(metrics))
    payments = Payments(settings, engine, sessions, orders, mail)
    commerce = Commerce(
        events=events,
        orders=orders,
        payments=payments,
        lifecycle=OrderLifecycle(engine, sessions, orders, payments),
        catalog=Catalog(sessions, events),
        inventory=Inventory(engine, sessions, events),
        sales=SaleService(engine, sessions, directory, events),
        dashboard=Dashboard(engine),
        bag=Bag(sessions, events),
        checkout=Checkout(engine),
        addresses=AddressAccess(engine),
        mail=mail,
    )
    app.add_routes(
        CommerceApi(
            commerce.orders,
            commerce.payments,
            commerce.catalog,
            commerce.inventory,
            commerce.sales,
            commerce.dashboard,
        ).routes()
        + FulfilmentApi(commerce.lifecycle).routes()
    )
    app.add_routes(CheckoutApi(commerce.bag, commerce.checkout, commerce.addresses).routes())
    commands.register(hub, orders, commerce.sales)
    hub.on_publish(STREAM_ENDED, commerce.sales.end_with_live)
    commerce.bag.register(hub)
    Cards(sessions, events, commerce.bag).register(hub)

    async def running(app: web.Application) -> AsyncIterator[None]:
        loops = [
            asyncio.create_task(SaleClock(engine, events).run(), name="sale-clock"),
            asyncio.create_task(ExpirySweeper(engine, orders).run(), name="reservation-expiry"),
            asyncio.create_task(commerce.payments.run_refunds(), name="refund-retry"),
            asyncio.create_task(mail.run(), name="mail-sender"),
        ]
        yield
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await orders.close()
        await events.close()
        await commerce.payments.close()

    app.cleanup_ctx.append(running)
    return commerce
