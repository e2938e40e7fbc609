"""Commerce over HTTP: buyers' orders and payments, the operator's catalog, inventory, sales,
orders and refunds (role-checked and audited), the Stripe webhook and the sales dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from livecommerce.appkeys import ENGINE, SESSION_FACTORY
from livecommerce.auth import Principal, audit, authorize
from livecommerce.commerce import dashboard, ledger, sales
from livecommerce.commerce.appkeys import COMMERCE_EVENTS, ORDERS, PAYMENTS
from livecommerce.commerce.catalog import product_card
from livecommerce.commerce.order_views import recent_orders
from livecommerce.db.models import Room, Sku
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal, read_json
from livecommerce.realtime.hub import HUB

routes = web.RouteTableDef()

MAX_UNITS = 1_000_000
MAX_PRICE_MINOR = 100_000_000_00


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PlaceOrder(BaseModel):
    """Quantity and key are checked by the order service, the same way for HTTP and WebSocket."""

    model_config = ConfigDict(extra="forbid")
    sale_id: int | None = Field(None, strict=True)
    sku_id: int | None = Field(None, strict=True)
    room_id: int | None = Field(None, strict=True)
    quantity: Any = 1
    idempotency_key: Any = None


class NewProduct(Strict):
    merchant_id: int | None = None
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
    room_id: int
    sku_id: int
    sale_price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)
    allocated: int = Field(ge=1, le=MAX_UNITS)
    per_user_limit: int = Field(1, ge=1, le=100)
    starts_at: AwareDatetime | None = Field(None, strict=False)
    duration_s: float = Field(600, gt=0, le=7 * 24 * 3600)


class Restock(Strict):
    units: int = Field(ge=1, le=MAX_UNITS)
    receive: bool = False


class Reprice(Strict):
    sale_price_minor: int = Field(ge=0, le=MAX_PRICE_MINOR)


class RefundBody(Strict):
    reason: str = Field("", max_length=300)


# -- buyers ------------------------------------------------------------------------------------


@routes.post("/api/orders")
async def place_order(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, PlaceOrder)
    answer = await request.app[ORDERS].place(
        who,
        quantity=body.quantity,
        key=body.idempotency_key,
        sale_id=body.sale_id,
        sku_id=body.sku_id,
        room_id=body.room_id,
    )
    return json_response(answer.accepted())


@routes.get("/api/orders")
async def my_orders(request: web.Request) -> web.Response:
    who = principal(request)
    room = request.query.get("room_id")
    room_id = int(room) if room and room.isdigit() else None
    return json_response({"orders": await request.app[ORDERS].own_orders(who.user_id, room_id)})


@routes.post("/api/orders/{order_id}/cancel")
async def cancel_order(request: web.Request) -> web.Response:
    order = await request.app[ORDERS].cancel(principal(request), int_param(request, "order_id"))
    return json_response({"order": order})


@routes.post("/api/orders/{order_id}/pay")
async def pay_order(request: web.Request) -> web.Response:
    return json_response(
        await request.app[PAYMENTS].start(principal(request), int_param(request, "order_id"))
    )


@routes.post("/api/orders/{order_id}/test-confirm")
async def confirm_test_payment(request: web.Request) -> web.Response:
    order = await request.app[PAYMENTS].confirm_test(principal(request), int_param(request, "order_id"))
    return json_response({"order": order, "mode": "test"})


@routes.post("/api/payments/stripe/webhook")
async def stripe_webhook(request: web.Request) -> web.Response:
    payload = await request.read()
    return json_response(
        await request.app[PAYMENTS].webhook(payload, request.headers.get("Stripe-Signature"))
    )


@routes.get("/api/rooms/{room_id}/sales")
async def room_sales(request: web.Request) -> web.Response:
    room_id = int_param(request, "room_id")
    async with request.app[ENGINE].connect() as conn:
        return json_response({"sales": await sales.sales_in_room(conn, room_id, open_only=False)})


@routes.get("/api/sales/{sale_id}")
async def get_sale(request: web.Request) -> web.Response:
    async with request.app[ENGINE].connect() as conn:
        row = await sales.read_sale(conn, int_param(request, "sale_id"))
    if row is None:
        raise AppError("not_found", "no such sale")
    return json_response(sales.sale_view(row))


# -- operators ---------------------------------------------------------------------------------


async def _authorize_on(conn: AsyncConnection, who: Principal, action: str, table: str, row_id: int) -> int:
    """Authorize an action on one row of a merchant-owned table; return the row's merchant."""
    merchant_id = await conn.scalar(text(f"SELECT merchant_id FROM {table} WHERE id = :id"), {"id": row_id})
    if merchant_id is None:
        raise AppError("not_found", f"no such {table.removesuffix('s').replace('_', ' ')}")
    authorize(who, action, merchant_id)
    return merchant_id


def _own_merchant(who: Principal, requested: int | None) -> int:
    merchant_id = requested if requested is not None else who.merchant_id
    if merchant_id is None:
        raise AppError("invalid", "merchant_id: required for accounts outside a merchant")
    return merchant_id


@routes.get("/api/inventory")
async def list_inventory(request: web.Request) -> web.Response:
    who = principal(request)
    merchant = request.query.get("merchant_id")
    merchant_id = _own_merchant(who, int(merchant) if merchant and merchant.isdigit() else None)
    authorize(who, "sales.read", merchant_id)
    async with request.app[ENGINE].connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.id AS sku_id, s.product_id, p.name AS product, s.code, s.name, s.price_minor, s.currency, "
                "s.on_hand, s.reserved, s.on_hand - s.reserved AS available FROM skus s "
                "JOIN products p ON p.id = s.product_id WHERE s.merchant_id = :m ORDER BY s.product_id, s.id"
            ),
            {"m": merchant_id},
        )
        return json_response({"skus": [dict(row._mapping) for row in rows]})


@routes.post("/api/products")
async def create_product(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, NewProduct)
    merchant_id = _own_merchant(who, body.merchant_id)
    authorize(who, "inventory.manage", merchant_id)
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        product_id = await conn.scalar(
            text(
                "INSERT INTO products (merchant_id, name, description, image_url) "
                "SELECT id, :name, :description, :image FROM merchants WHERE id = :m RETURNING id"
            ),
            {"m": merchant_id, "name": body.name, "description": body.description, "image": body.image_url},
        )
        if product_id is None:
            raise AppError("not_found", "no such merchant")
        await audit(
            session,
            who,
            "product.create",
            merchant_id=merchant_id,
            target_type="product",
            target_id=product_id,
        )
    return json_response({"product_id": product_id}, status=201)


@routes.post("/api/products/{product_id}/skus")
async def create_sku(request: web.Request) -> web.Response:
    who = principal(request)
    product_id = int_param(request, "product_id")
    body = await read_json(request, NewSku)
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        merchant_id = await _authorize_on(conn, who, "inventory.manage", "products", product_id)
        try:
            async with conn.begin_nested():
                sku_id = await conn.scalar(
                    text(
                        "INSERT INTO skus (product_id, merchant_id, code, name, price_minor, currency, on_hand) "
                        "SELECT :p, m.id, :code, :name, :price, m.currency, :n FROM merchants m WHERE m.id = :m "
                        "RETURNING id"
                    ),
                    {
                        "p": product_id,
                        "m": merchant_id,
                        "code": body.code,
                        "name": body.name,
                        "price": body.price_minor,
                        "n": body.on_hand,
                    },
                )
        except IntegrityError:
            raise AppError("already_exists", f"the SKU code {body.code!r} is taken") from None
        await audit(
            session,
            who,
            "sku.create",
            merchant_id=merchant_id,
            target_type="sku",
            target_id=sku_id,
            details={"code": body.code, "on_hand": body.on_hand},
        )
    return json_response({"sku_id": sku_id}, status=201)


@routes.post("/api/skus/{sku_id}/stock")
async def change_stock(request: web.Request) -> web.Response:
    who = principal(request)
    sku_id = int_param(request, "sku_id")
    body = await read_json(request, StockChange)
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        merchant_id = await _authorize_on(conn, who, "inventory.manage", "skus", sku_id)
        stock = await ledger.receive(conn, sku_id, body.delta)
        await audit(
            session,
            who,
            "sku.stock",
            merchant_id=merchant_id,
            target_type="sku",
            target_id=sku_id,
            details={"delta": body.delta, **stock},
        )
    return json_response({"sku_id": sku_id, **stock})


@routes.post("/api/skus/{sku_id}/price")
async def reprice_sku(request: web.Request) -> web.Response:
    """The SKU's regular price; rooms with its product pinned get the card again, repriced."""
    who = principal(request)
    sku_id = int_param(request, "sku_id")
    body = await read_json(request, SkuPrice)
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        merchant_id = await _authorize_on(conn, who, "inventory.manage", "skus", sku_id)
        sku = await session.get_one(Sku, sku_id, with_for_update=True)
        previous = sku.price_minor
        sku.price_minor = body.price_minor
        await audit(
            session,
            who,
            "sku.price",
            merchant_id=merchant_id,
            target_type="sku",
            target_id=sku_id,
            details={"from": previous, "to": body.price_minor},
        )
        await session.flush()
        card = await product_card(session, sku.product_id)
        rooms = (await session.scalars(select(Room.id).where(Room.pinned_product_id == sku.product_id))).all()
    for room_id in rooms:
        await request.app[HUB].publish(room_id, "card.pinned", {"card": card})
    return json_response(
        {"sku_id": sku_id, "price_minor": body.price_minor, "previous_price_minor": previous}
    )


@routes.post("/api/sales")
async def create_sale(request: web.Request) -> web.Response:
    who = principal(request)
    body = await read_json(request, NewSale)
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        merchant_id = await _authorize_on(conn, who, "sale.manage", "rooms", body.room_id)
        view = await sales.create_sale(
            conn,
            room_id=body.room_id,
            sku_id=body.sku_id,
            sale_price_minor=body.sale_price_minor,
            allocated=body.allocated,
            per_user_limit=body.per_user_limit,
            starts_at=body.starts_at,
            duration_s=body.duration_s,
            created_by=who.user_id,
        )
        await audit(
            session,
            who,
            "sale.create",
            merchant_id=merchant_id,
            room_id=body.room_id,
            target_type="sale",
            target_id=view["sale_id"],
            details=body.model_dump(mode="json"),
        )
    request.app[ORDERS].directory.remember(
        sales.SaleRef(view["sale_id"], view["room_id"], merchant_id, view["sku_id"])
    )
    request.app[COMMERCE_EVENTS].sale(view["room_id"], f"sale.{view['state']}", view)
    return json_response(view, status=201)


async def _sale_action(
    request: web.Request, action: str, details: dict[str, Any], change: Any
) -> web.Response:
    """Run one operator change on a sale in a transaction with its audit row, then announce it."""
    who = principal(request)
    sale_id = int_param(request, "sale_id")
    async with request.app[SESSION_FACTORY].begin() as session:
        conn = await session.connection()
        merchant_id = await _authorize_on(conn, who, "sale.manage", "flash_sales", sale_id)
        events = await change(conn, sale_id)
        view = events[0][1]
        await audit(
            session,
            who,
            action,
            merchant_id=merchant_id,
            room_id=view["room_id"],
            target_type="sale",
            target_id=sale_id,
            details=details,
        )
    for type_, event_view in events:
        request.app[COMMERCE_EVENTS].sale(event_view["room_id"], type_, event_view)
    return json_response(view)


@routes.post("/api/sales/{sale_id}/restock")
async def restock_sale(request: web.Request) -> web.Response:
    body = await read_json(request, Restock)

    async def change(conn: AsyncConnection, sale_id: int) -> list[tuple[str, dict[str, Any]]]:
        view, reopened = await sales.restock(conn, sale_id, body.units, receive=body.receive)
        return [("sale.restocked", view), *([("sale.live", view)] if reopened else [])]

    return await _sale_action(request, "sale.restock", body.model_dump(), change)


@routes.post("/api/sales/{sale_id}/price")
async def reprice_sale(request: web.Request) -> web.Response:
    body = await read_json(request, Reprice)

    async def change(conn: AsyncConnection, sale_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [("sale.repriced", await sales.reprice(conn, sale_id, body.sale_price_minor))]

    return await _sale_action(request, "sale.reprice", body.model_dump(), change)


@routes.post("/api/sales/{sale_id}/end")
async def end_sale(request: web.Request) -> web.Response:
    async def change(conn: AsyncConnection, sale_id: int) -> list[tuple[str, dict[str, Any]]]:
        return [("sale.ended", await sales.end_sale(conn, sale_id))]

    return await _sale_action(request, "sale.end", {}, change)


@routes.get("/api/rooms/{room_id}/orders")
async def room_orders(request: web.Request) -> web.Response:
    who = principal(request)
    room_id = int_param(request, "room_id")
    status = request.query.get("status")
    if status not in (None, "reserved", "paid", "expired", "cancelled", "refunded"):
        raise AppError("invalid", "status: reserved, paid, expired, cancelled or refunded")
    async with request.app[ENGINE].connect() as conn:
        await _authorize_on(conn, who, "sales.read", "rooms", room_id)
        orders = await recent_orders(conn, room_id=room_id, status=status, limit=500)
    return json_response({"orders": orders})


@routes.post("/api/orders/{order_id}/refund")
async def refund_order(request: web.Request) -> web.Response:
    body = await read_json(request, RefundBody)
    order = await request.app[PAYMENTS].refund(
        principal(request), int_param(request, "order_id"), body.reason
    )
    return json_response({"order": order})


def _time_param(request: web.Request, name: str, default: datetime) -> datetime:
    value = request.query.get(name)
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AppError("invalid", f"{name}: an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@routes.get("/api/rooms/{room_id}/streams")
async def room_streams(request: web.Request) -> web.Response:
    """The room's stream sessions, newest first: what the dashboard can be scoped to."""
    who = principal(request)
    room_id = int_param(request, "room_id")
    async with request.app[ENGINE].connect() as conn:
        await _authorize_on(conn, who, "sales.read", "rooms", room_id)
        return json_response({"streams": await dashboard.room_streams(conn, room_id)})


@routes.get("/api/rooms/{room_id}/dashboard")
async def sales_dashboard(request: web.Request) -> web.Response:
    """GMV, orders, units, viewers and conversion per product card, with time series (`?format=csv`)."""
    who = principal(request)
    room_id = int_param(request, "room_id")
    query = request.query
    try:
        bucket_s = int(query.get("bucket_s", "60"))
        stream = int(query["stream"]) if "stream" in query else None
    except ValueError:
        raise AppError("invalid", "bucket_s and stream are whole numbers") from None
    if not 1 <= bucket_s <= 86400:
        raise AppError("invalid", "bucket_s: from 1 to 86400")
    async with request.app[ENGINE].connect() as conn:
        await _authorize_on(conn, who, "sales.read", "rooms", room_id)
        if stream is not None:
            since, until = await dashboard.stream_window(conn, room_id, stream)
        else:
            now = datetime.now(UTC)
            since = _time_param(request, "since", now - timedelta(days=1))
            until = _time_param(request, "until", now + timedelta(seconds=1))
        data = await dashboard.room_dashboard(conn, room_id, since=since, until=until, bucket_s=bucket_s)
    if query.get("format") == "csv":
        return web.Response(
            text=dashboard.series_csv(data),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="room-{room_id}-sales.csv"'},
        )
    return json_response(data)
