"""The commerce plane on the room WebSocket: order commands and the join snapshot's parts."""

from __future__ import annotations

from typing import Any

from livecommerce.auth import Principal, may
from livecommerce.commerce.orders import OrderService
from livecommerce.commerce.reservation import Answer
from livecommerce.commerce.sale_service import SaleService
from livecommerce.errors import AppError
from livecommerce.http import optional_id
from livecommerce.realtime.hub import CommandContext, Hub, Reply

FEED_SNAPSHOT = 50


def register(hub: Hub, orders: OrderService, sales: SaleService) -> None:
    def place(ctx: CommandContext, data: dict[str, Any], reply: Reply) -> None:
        """`order.place` {sale_id | sku_id, quantity, idempotency_key} → the reserved answer, or a
        typed error, once the tap's batch has committed."""

        def on_answer(answer: Answer | BaseException) -> None:
            reply(answer if isinstance(answer, BaseException) else answer.error() or answer.to_dict())

        orders.place_soon(
            ctx.principal,
            on_answer,
            quantity=data.get("quantity", 1),
            key=data.get("idempotency_key"),
            sale_id=optional_id(data, "sale_id"),
            sku_id=optional_id(data, "sku_id"),
            room_id=ctx.room_id,
        )

    async def cancel(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        """`order.cancel` {order_id} → the cancelled order."""
        order_id = optional_id(data, "order_id")
        if order_id is None:
            raise AppError("invalid", "order_id: a whole number")
        return {"order": await orders.cancel(ctx.principal, order_id)}

    async def open_sales(room_id: int, principal: Principal) -> list[dict[str, Any]]:
        return await sales.in_room(room_id, open_only=True)

    async def own_orders(room_id: int, principal: Principal) -> list[dict[str, Any]]:
        return await orders.own_orders(principal.user_id, room_id)

    async def order_feed(room_id: int, principal: Principal) -> list[dict[str, Any]] | None:
        """The merchant's staff get the room's latest orders; everyone else gets null."""
        room_merchant = (await hub.room_info(room_id)).merchant_id
        if not principal.is_staff or not may(principal, "sales.read", room_merchant):
            return None
        return await orders.latest_in_room(room_id, FEED_SNAPSHOT)

    hub.deferred_command("order.place", place)
    hub.command("order.cancel", cancel)
    hub.snapshot_provider("sales", open_sales)
    hub.snapshot_provider("orders", own_orders)
    hub.snapshot_provider("order_feed", order_feed)
