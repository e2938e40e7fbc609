"""An operator changes a SKU's regular price: checked, audited, and the pinned card follows."""

from __future__ import annotations

import aiohttp
from commerce_client import call
from room_client import RoomClient
from sqlalchemy import select

from livecommerce.appkeys import SESSION_FACTORY
from livecommerce.commerce.api import MAX_PRICE_MINOR
from livecommerce.db.models import AuditLog, Sku


async def test_operator_reprices_a_sku_and_the_pinned_card_shows_the_new_price(server):
    world = await server.seed(price_minor=1999)
    other = await server.seed()
    _, viewer_token = await server.guest("Viewer")
    url = f"{server.url}/api/skus/{world.sku_id}/price"
    operator = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["operator"]))
    viewer = await RoomClient.connect(server.room_ws(world.room_id, viewer_token))
    try:
        await viewer.event("snapshot")
        await operator.ok("card.pin", {"product_id": world.product_id})
        async with aiohttp.ClientSession() as http:
            for body, expected in (
                ({"price_minor": -1}, (400, "invalid")),
                ({"price_minor": MAX_PRICE_MINOR + 1}, (400, "invalid")),
                ({"price_minor": "12.50"}, (400, "invalid")),
            ):
                status, answer = await call(http, "POST", url, world.tokens["operator"], body)
                assert (status, answer["error"]["code"]) == expected, body
            status, answer = await call(
                http,
                "POST",
                f"{server.url}/api/skus/{world.sku_id + 10_000}/price",
                world.tokens["operator"],
                {"price_minor": 100},
            )
            assert (status, answer["error"]["code"]) == (404, "not_found")
            for token in (other.tokens["operator"], viewer_token):
                status, answer = await call(http, "POST", url, token, {"price_minor": 100})
                assert (status, answer["error"]["code"]) == (403, "forbidden")

            status, answer = await call(http, "POST", url, world.tokens["operator"], {"price_minor": 1499})
            assert status == 200
            assert answer == {"sku_id": world.sku_id, "price_minor": 1499, "previous_price_minor": 1999}

        def repriced(message: dict) -> bool:
            card = (message.get("data") or {}).get("card") or {}
            return message.get("type") == "card.pinned" and [
                s["price_minor"] for s in card.get("skus", [])
            ] == [1499]

        await viewer.wait(repriced)
        async with server.app[SESSION_FACTORY]() as session:
            assert (await session.get(Sku, world.sku_id)).price_minor == 1499
            [entry] = (await session.scalars(select(AuditLog).where(AuditLog.action == "sku.price"))).all()
            assert entry.target_id == str(world.sku_id) and entry.details == {"from": 1999, "to": 1499}
    finally:
        await operator.close()
        await viewer.close()
