"""Commerce over HTTP: buyers' orders and payments, the operator's catalog, inventory, sales and
order lists, the Stripe webhook and the sales dashboard (orders after payment: fulfilment_api). Handlers parse the request and
call a service, which authorizes, writes (with the audit row) and announces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from livecommerce.commerce import dashboard
from livecommerce.commerce.catalog import Catalog
from livecommerce.commerce.dashboard import Dashboard
from livecommerce.commerce.inventory import Inventory
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.ownership import own_merchant
from livecommerce.commerce.payments import Payments
from livecommerce.commerce.sale_service import SaleService
from livecommerce.errors import AppError
from livecommerce.http import Id, int_param, json_response, principal, query_int, read_json

MAX_UNITS = 1_000_000
MAX_PRICE_MINOR = 100_000_000_00


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PlaceOrder(BaseModel):
    """Quantity and key are checked by the order service, the same way for HTTP and WebSocket."""

    model_config = ConfigDict(extra="forbid")
    sale_id: Id | None = Field(None, strict=True)
    sku_id: Id | None = Field(None, strict=True)
    room_id: Id | None = Field(None, strict=True)
    quantity: Any = 1
    idempotency_key: Any = None


class NewProduct(Strict):
    merchant_id: Id | None = None
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    image_url: str = Field("", max_length=1000, pattern=r"^(https?://\S+)?$")


class NewSku(Strict):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)
    on_hand: int = Field(0, ge=0, le=MAX_UNITS)


class StockChange(Strict):
    delta: int = Field(ge=-MAX_UNITS, le=MAX_UNITS)


class SkuPrice(Strict):
    price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)


class NewSale(Strict):
    room_id: Id
    sku_id: Id
    sale_price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)
    allocated: int = Field(ge=1, le=MAX_UNITS)
    per_user_limit: int = Field(1, ge=1, le=100)
    keep_open_after_live: bool = False
    starts_at: AwareDatetime | None = Field(None, strict=False)
    duration_s: float = Field(600, gt=0, le=7 * 24 * 3600)


class Restock(Strict):
    units: int = Field(ge=1, le=MAX_UNITS)
    receive: bool = False


class Reprice(Strict):
    sale_price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)


class AfterLive(Strict):
    keep_open_after_live: bool


def _time_param(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AppError("invalid", f"{name}: an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CommerceApi:
    """The HTTP handlers, bound to the services they call."""

    orders: OrderService
    payments: Payments
    catalog: Catalog
    inventory: Inventory
    sales: SaleService
    dashboard: Dashboard

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/orders", self.place_order),
            web.get("/api/orders", self.my_orders),
            web.post("/api/orders/{order_id}/pay", self.pay_order),
            web.post("/api/orders/{order_id}/test-confirm", self.confirm_test_payment),
            web.post("/api/payments/stripe/webhook", self.stripe_webhook),
            web.get("/api/rooms/{room_id}/sales", self.room_sales),
            web.get("/api/sales/{sale_id}", self.get_sale),
            web.get("/api/inventory", self.list_inventory),
            web.post("/api/products", self.create_product),
            web.post("/api/products/{product_id}/skus", self.create_sku),
            web.post("/api/skus/{sku_id}/stock", self.change_stock),
            web.post("/api/skus/{sku_id}/price", self.reprice_sku),
            web.post("/api/sales", self.create_sale),
            web.post("/api/sales/{sale_id}/restock", self.restock_sale),
            web.post("/api/sales/{sale_id}/price", self.reprice_sale),
            web.post("/api/sales/{sale_id}/end", self.end_sale),
            web.post("/api/sales/{sale_id}/after-live", self.keep_sale_open_after_live),
            web.get("/api/rooms/{room_id}/orders", self.room_orders),
            web.get("/api/rooms/{room_id}/streams", self.room_streams),
            web.get("/api/rooms/{room_id}/dashboard", self.sales_dashboard),
        ]

    # -- buyers ------------------------------------------------------------------------------

    async def place_order(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, PlaceOrder)
        answer = await self.orders.place(
            who,
            quantity=body.quantity,
            key=body.idempotency_key,
            sale_id=body.sale_id,
            sku_id=body.sku_id,
            room_id=body.room_id,
        )
        return json_response(answer.accepted())

    async def my_orders(self, request: web.Request) -> web.Response:
        who = principal(request)
        orders = await self.orders.own_orders(who.user_id, query_int(request, "room_id", minimum=1))
        return json_response({"orders": orders})

    async def pay_order(self, request: web.Request) -> web.Response:
        return json_response(await self.payments.start(principal(request), int_param(request, "order_id")))

    async def confirm_test_payment(self, request: web.Request) -> web.Response:
        order = await self.payments.confirm_test(principal(request), int_param(request, "order_id"))
        return json_response({"order": order, "mode": "test"})

    async def stripe_webhook(self, request: web.Request) -> web.Response:
        payload = await request.read()
        return json_response(await self.payments.webhook(payload, request.headers.get("Stripe-Signature")))

    async def room_sales(self, request: web.Request) -> web.Response:
        sales = await self.sales.in_room(int_param(request, "room_id"), open_only=False)
        return json_response({"sales": sales})

    async def get_sale(self, request: web.Request) -> web.Response:
        return json_response(await self.sales.view(int_param(request, "sale_id")))

    # -- operators ---------------------------------------------------------------------------

    async def list_inventory(self, request: web.Request) -> web.Response:
        skus = await self.inventory.skus(principal(request), query_int(request, "merchant_id", minimum=1))
        return json_response({"skus": skus})

    async def create_product(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, NewProduct)
        product_id = await self.catalog.create_product(
            who,
            own_merchant(who, body.merchant_id),
            name=body.name,
            description=body.description,
            image_url=body.image_url,
        )
        return json_response({"product_id": product_id}, status=201)

    async def create_sku(self, request: web.Request) -> web.Response:
        who = principal(request)
        product_id = int_param(request, "product_id")
        body = await read_json(request, NewSku)
        sku_id = await self.catalog.create_sku(
            who,
            product_id,
            code=body.code,
            name=body.name,
            price_minor=body.price_minor,
            on_hand=body.on_hand,
        )
        return json_response({"sku_id": sku_id}, status=201)

    async def change_stock(self, request: web.Request) -> web.Response:
        who = principal(request)
        sku_id = int_param(request, "sku_id")
        body = await read_json(request, StockChange)
        stock = await self.inventory.change_stock(who, sku_id, body.delta)
        return json_response({"sku_id": sku_id, **stock})

    async def reprice_sku(self, request: web.Request) -> web.Response:
        """The SKU's regular price; rooms with its product pinned get the card again, repriced."""
        who = principal(request)
        sku_id = int_param(request, "sku_id")
        body = await read_json(request, SkuPrice)
        previous = await self.catalog.reprice_sku(who, sku_id, body.price_minor)
        return json_response(
            {"sku_id": sku_id, "price_minor": body.price_minor, "previous_price_minor": previous}
        )

    async def create_sale(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, NewSale)
        view = await self.sales.create(
            who,
            room_id=body.room_id,
            sku_id=body.sku_id,
            sale_price_minor=body.sale_price_minor,
            allocated=body.allocated,
            per_user_limit=body.per_user_limit,
            keep_open_after_live=body.keep_open_after_live,
            starts_at=body.starts_at,
            duration_s=body.duration_s,
            details=body.model_dump(mode="json"),
        )
        return json_response(view, status=201)

    async def restock_sale(self, request: web.Request) -> web.Response:
        who = principal(request)
        sale_id = int_param(request, "sale_id")
        body = await read_json(request, Restock)
        return json_response(await self.sales.restock(who, sale_id, body.units, receive=body.receive))

    async def reprice_sale(self, request: web.Request) -> web.Response:
        who = principal(request)
        sale_id = int_param(request, "sale_id")
        body = await read_json(request, Reprice)
        return json_response(await self.sales.reprice(who, sale_id, body.sale_price_minor))

    async def keep_sale_open_after_live(self, request: web.Request) -> web.Response:
        who = principal(request)
        sale_id = int_param(request, "sale_id")
        body = await read_json(request, AfterLive)
        return json_response(await self.sales.keep_open_after_live(who, sale_id, body.keep_open_after_live))

    async def end_sale(self, request: web.Request) -> web.Response:
        return json_response(await self.sales.end(principal(request), int_param(request, "sale_id")))

    async def room_orders(self, request: web.Request) -> web.Response:
        who = principal(request)
        orders = await self.orders.in_room(who, int_param(request, "room_id"), request.query.get("status"))
        return json_response({"orders": orders})

    async def room_streams(self, request: web.Request) -> web.Response:
        """The room's stream sessions, newest first: what the dashboard can be scoped to."""
        streams = await self.dashboard.streams(principal(request), int_param(request, "room_id"))
        return json_response({"streams": streams})

    async def sales_dashboard(self, request: web.Request) -> web.Response:
        """GMV, orders, units, viewers and conversion per product card, with time series
        (`?format=csv`)."""
        who = principal(request)
        room_id = int_param(request, "room_id")
        query = request.query
        bucket_s = query_int(request, "bucket_s", 60, minimum=1, maximum=86400)
        assert bucket_s is not None  # it has a default
        stream = query_int(request, "stream", minimum=1)
        data = await self.dashboard.figures(
            who,
            room_id,
            bucket_s=bucket_s,
            stream=stream,
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
        )
        if query.get("format") == "csv":
            return web.Response(
                text=dashboard.series_csv(data),
                content_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="room-{room_id}-sales.csv"'},
            )
        return json_response(data)
