"""The end of a live, published by the media plane, ends the room's flash sales (unless the
merchant keeps a sale open after the live) and closes its keyword draw: a real aiortc publisher
leaves with a WHIP DELETE, or drops and stays away past the grace period, while a viewer watches
the room."""

from __future__ import annotations

import aiohttp
import pytest
import testpattern
from commerce_client import call, guests, new_key, start_sale
from room_client import RoomClient

pytestmark = [pytest.mark.media, pytest.mark.timeout(180)]


@pytest.fixture
def settings(settings):
    settings.publisher_grace_seconds = 2
    return settings


async def _leave(http: aiohttp.ClientSession, publisher) -> None:
    async with http.delete(publisher.location) as response:
        assert response.status == 200
    await publisher.pc.close()


async def _drop(http: aiohttp.ClientSession, publisher) -> None:
    await publisher.pc.close()  # the uplink drops: no DELETE, and no return within the grace period


@pytest.mark.parametrize(("ending", "reason"), [(_leave, "publisher_left"), (_drop, "publisher_lost")])
async def test_the_live_ending_ends_its_sales_and_keyword_draw_but_not_a_sale_kept_open(
    server, ending, reason
):
    world = await server.seed(stock=20)
    operator = world.tokens["operator"]
    async with aiohttp.ClientSession() as http:
        status, other_sku = await call(
            http,
            "POST",
            f"{server.url}/api/products/{world.product_id}/skus",
            operator,
            {"code": "TEA-1KG", "name": "1 kg", "price_minor": 4000, "on_hand": 10},
        )
        assert status == 201, other_sku
        [(_, buyer)] = await guests(http, server.url, 1)
        viewer = await RoomClient.connect(server.room_ws(world.room_id, buyer))
        try:
            await viewer.event("snapshot")
            publisher = await testpattern.publish(
                http,
                f"{server.url}/api/rooms/{world.room_id}/whip",
                world.stream_key,
                video=testpattern.PatternVideoTrack(width=352, height=198, fps=15, bitrate=200_000),
                audio=testpattern.ToneAudioTrack(),
            )
            await viewer.event("stream.live", timeout=60)
            ending_sale = await start_sale(
                http, server.url, operator, room_id=world.room_id, sku_id=world.sku_id, allocated=5
            )
            assert ending_sale["keep_open_after_live"] is False
            kept = await start_sale(
                http,
                server.url,
                operator,
                room_id=world.room_id,
                sku_id=other_sku["sku_id"],
                allocated=5,
                keep_open_after_live=True,
            )
            status, draw = await call(
                http,
                "POST",
                f"{server.url}/api/rooms/{world.room_id}/draws",
                world.tokens["anchor"],
                {
                    "prize_text": "Tea set",
                    "winners_count": 1,
                    "rule": "keyword",
                    "keyword": "tea",
                    "duration_seconds": 600,
                },
            )
            assert status == 201, draw

            await ending(http, publisher)

            await viewer.event("stream.ended", timeout=60, reason=reason)
            ended = await viewer.event("sale.ended", sale_id=ending_sale["sale_id"])
            assert ended["data"]["state"] == "ended"
            await viewer.event("draw.closed", id=draw["id"])
            tap = await viewer.send(
                "order.place", {"sale_id": ending_sale["sale_id"], "idempotency_key": new_key()}
            )
            assert tap["error"]["code"] == "ended"
            status, answer = await call(
                http,
                "POST",
                f"{server.url}/api/orders",
                buyer,
                {"sale_id": kept["sale_id"], "idempotency_key": new_key()},
            )
            assert status == 200, answer
            status, view = await call(http, "GET", f"{server.url}/api/sales/{kept['sale_id']}", buyer)
            assert view["state"] == "live" and view["keep_open_after_live"] is True
            assert not [e for e in viewer.events("sale.ended") if e["data"]["sale_id"] == kept["sale_id"]]
        finally:
            await viewer.close()
