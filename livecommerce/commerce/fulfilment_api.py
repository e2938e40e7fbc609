"""Orders after payment over HTTP: the buyer's cancel, return request, order detail and changes;
the operator's refund, ship, tracking import, deliver, close and answer to a return."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from livecommerce.commerce.fulfilment import OrderLifecycle
from livecommerce.errors import AppError
from livecommerce.http import int_param, json_response, principal, query_int, read_json

MAX_REASON = 500
CSV_TYPES = ("text/csv", "text/plain", "application/vnd.ms-excel")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Reason(Strict):
    reason: str = Field("", max_length=MAX_REASON)


class Parcel(Strict):
    carrier: str = Field(max_length=200)
    tracking_number: str = Field(max_length=200)


class ReturnAccepted(Strict):
    restock: bool
    reason: str = Field("", max_length=MAX_REASON)


@dataclass(frozen=True, slots=True)
class FulfilmentApi:
    """The HTTP handlers, bound to the order lifecycle."""

    lifecycle: OrderLifecycle

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/orders/changes", self.changes),
            web.get("/api/orders/{order_id}", self.detail),
            web.post("/api/orders/{order_id}/cancel", self.cancel),
            web.post("/api/orders/{order_id}/return", self.request_return),
            web.post("/api/orders/{order_id}/refund", self.refund),
            web.post("/api/orders/{order_id}/ship", self.ship),
            web.post("/api/orders/{order_id}/deliver", self.deliver),
            web.post("/api/orders/{order_id}/close", self.close),
            web.post("/api/orders/{order_id}/return/accept", self.accept_return),
            web.post("/api/orders/{order_id}/return/refuse", self.refuse_return),
            web.post("/api/shipments/import", self.import_tracking),
        ]

    # -- buyers ------------------------------------------------------------------------------

    async def changes(self, request: web.Request) -> web.Response:
        """The buyer's order events after `after` (an event id), with those orders as they are."""
        after = query_int(request, "after", minimum=0)
        return json_response(await self.lifecycle.changes(principal(request), after))

    async def detail(self, request: web.Request) -> web.Response:
        order = await self.lifecycle.detail(principal(request), int_param(request, "order_id"))
        return json_response({"order": order})

    async def cancel(self, request: web.Request) -> web.Response:
        order = await self.lifecycle.cancel(principal(request), int_param(request, "order_id"))
        return json_response({"order": order})

    async def request_return(self, request: web.Request) -> web.Response:
        body = await read_json(request, Reason)
        order = await self.lifecycle.request_return(
            principal(request), int_param(request, "order_id"), body.reason
        )
        return json_response({"order": order})

    # -- operators ---------------------------------------------------------------------------

    async def refund(self, request: web.Request) -> web.Response:
        body = await read_json(request, Reason)
        order = await self.lifecycle.refund(principal(request), int_param(request, "order_id"), body.reason)
        return json_response({"order": order})

    async def ship(self, request: web.Request) -> web.Response:
        body = await read_json(request, Parcel)
        order = await self.lifecycle.ship(
            principal(request), int_param(request, "order_id"), body.carrier, body.tracking_number
        )
        return json_response({"order": order})

    async def import_tracking(self, request: web.Request) -> web.Response:
        """A CSV file (`order_id,carrier,tracking_number`) as the request body; per-row results."""
        who = principal(request)
        if request.content_type not in CSV_TYPES:
            raise AppError("unsupported_media_type", "send the file as text/csv")
        return json_response(await self.lifecycle.import_tracking(who, await request.read()))

    async def deliver(self, request: web.Request) -> web.Response:
        order = await self.lifecycle.deliver(principal(request), int_param(request, "order_id"))
        return json_response({"order": order})

    async def close(self, request: web.Request) -> web.Response:
        order = await self.lifecycle.close(principal(request), int_param(request, "order_id"))
        return json_response({"order": order})

    async def accept_return(self, request: web.Request) -> web.Response:
        body = await read_json(request, ReturnAccepted)
        order = await self.lifecycle.accept_return(
            principal(request), int_param(request, "order_id"), restock=body.restock, reason=body.reason
        )
        return json_response({"order": order})

    async def refuse_return(self, request: web.Request) -> web.Response:
        body = await read_json(request, Reason)
        order = await self.lifecycle.refuse_return(
            principal(request), int_param(request, "order_id"), body.reason
        )
        return json_response({"order": order})
