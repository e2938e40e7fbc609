"""Checkout over HTTP: the live's bag, the buyer's details on an order and remembered for next
time, and the shipping details the buyer and the merchant's operators may see (audited for staff),
with the operators' CSV export. Handlers parse the request and call a service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from livecommerce.commerce.address_access import AddressAccess
from livecommerce.commerce.bag import Bag
from livecommerce.commerce.checkout import Checkout
from livecommerce.commerce.lifecycle import STATUSES
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal, query_int, read_json


class BuyerDetailsBody(BaseModel):
    """Checked field by field by `buyer_details.read_details`, with a code per field."""

    model_config = ConfigDict(extra="forbid")
    details: dict[str, Any] = Field(
        description="name, phone, email?, line1, line2?, city, region?, postal_code?, country (ISO 3166-1 alpha-2)"
    )


class ShipToBody(BuyerDetailsBody):
    remember: bool = Field(False, strict=True, description="also remember the details for the next checkout")
    language: str | None = Field(
        None,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        max_length=35,
        description="the language the buyer reads (a BCP 47 tag such as en or zh-CN): mail about the order is in it",
    )


@dataclass(frozen=True, slots=True)
class CheckoutApi:
    bag: Bag
    checkout: Checkout
    addresses: AddressAccess

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/rooms/{room_id}/bag", self.room_bag),
            web.put("/api/rooms/{room_id}/bag/{product_id}", self.add_to_bag),
            web.delete("/api/rooms/{room_id}/bag/{product_id}", self.remove_from_bag),
            web.get("/api/me/details", self.saved_details),
            web.put("/api/me/details", self.remember_details),
            web.delete("/api/me/details", self.forget_details),
            web.put("/api/orders/{order_id}/shipping", self.ship_to),
            web.get("/api/orders/{order_id}/shipping", self.shipping_of),
            web.get("/api/merchants/{merchant_id}/orders.csv", self.export_orders),
        ]

    async def room_bag(self, request: web.Request) -> web.Response:
        """The products of the room's live, with each SKU's price, stock and running sale."""
        return json_response({"products": await self.bag.products(int_param(request, "room_id"))})

    async def add_to_bag(self, request: web.Request) -> web.Response:
        who = principal(request)
        cards = await self.bag.add(who, int_param(request, "room_id"), int_param(request, "product_id"))
        return json_response({"products": cards})

    async def remove_from_bag(self, request: web.Request) -> web.Response:
        who = principal(request)
        cards = await self.bag.remove(who, int_param(request, "room_id"), int_param(request, "product_id"))
        return json_response({"products": cards})

    async def saved_details(self, request: web.Request) -> web.Response:
        return json_response({"details": await self.checkout.saved(principal(request))})

    async def remember_details(self, request: web.Request) -> web.Response:
        who = principal(request)
        body = await read_json(request, BuyerDetailsBody)
        return json_response({"details": await self.checkout.remember(who, body.details)})

    async def forget_details(self, request: web.Request) -> web.Response:
        return json_response({"deleted": await self.checkout.forget(principal(request))})

    async def ship_to(self, request: web.Request) -> web.Response:
        who = principal(request)
        order_id = int_param(request, "order_id")
        body = await read_json(request, ShipToBody)
        shipping = await self.checkout.ship_to(
            who, order_id, body.details, remember=body.remember, language=body.language
        )
        return json_response({"order_id": order_id, "shipping": shipping})

    async def shipping_of(self, request: web.Request) -> web.Response:
        return json_response(
            await self.addresses.shipping_of(principal(request), int_param(request, "order_id"))
        )

    async def export_orders(self, request: web.Request) -> web.Response:
        who = principal(request)
        merchant_id = int_param(request, "merchant_id")
        status = request.query.get("status")
        if status not in (None, *STATUSES):
            raise AppError("invalid", f"status: one of {', '.join(STATUSES)}")
        data = await self.addresses.export_csv(
            who, merchant_id, room_id=query_int(request, "room_id", minimum=1), status=status
        )
        return web.Response(
            text=data,
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="merchant-{merchant_id}-orders.csv"'},
        )
