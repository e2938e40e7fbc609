"""The per-stream sales dashboard: viewer counts sampled by a real server, the room's streams,
the dashboard scoped to one stream with its viewers series, and the CSV with viewers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from commerce_client import call, guests, new_key, start_paying, start_sale
from helpers import wait_for
from room_client import RoomClient
from sqlalchemy import select

from livecommerce.appkeys import HUB, SESSION_FACTORY
from livecommerce.db.models import RoomViewerSample, StreamSession
from livecommerce.realtime.viewer_samples import minute_of, record_viewers


async def test_connected_viewers_are_sampled_per_minute_by_the_presence_round(server):
    world = await server.seed()
    viewers = []
    try:
        for name in ("Ann", "Bo"):
            _, token = await server.guest(name)
            client = await RoomClient.connect(server.room_ws(world.room_id, token))
            await client.event("snapshot")
            viewers.append(client)

        async def sampled() -> RoomViewerSample | None:
            async with server.app[SESSION_FACTORY]() as session:
                return await session.scalar(
                    select(RoomViewerSample).where(
                        RoomViewerSample.room_id == world.room_id, RoomViewerSample.viewers == 2
                    )
                )

        sample = await wait_for(sampled, message="a sample of two viewers")
        assert sample.bucket.second == 0 and sample.bucket.microsecond == 0
    finally:
        for client in viewers:
            await client.close()


async def test_samples_keep_the_highest_count_per_minute_and_skip_empty_rooms(server):
    world = await server.seed()
    other = await server.seed()
    at = datetime.now(UTC)
    sessions = server.app[SESSION_FACTORY]
    await record_viewers(sessions, {world.room_id: 7, other.room_id: 0}, at)
    await record_viewers(sessions, {world.room_id: 3}, at)  # another node, same minute
    await record_viewers(sessions, {world.room_id: 9}, at + timedelta(minutes=1))
    async with sessions() as session:
        rows = (
            await session.execute(
                select(RoomViewerSample.room_id, RoomViewerSample.bucket, RoomViewerSample.viewers).order_by(
                    RoomViewerSample.bucket
                )
            )
        ).all()
    minute = minute_of(at)
    assert rows == [
        (world.room_id, minute, 7),
        (world.room_id, minute + timedelta(minutes=1), 9),
    ]


async def test_dashboard_scoped_to_a_stream_has_its_viewers_and_conversion_per_peak_viewer(server):
    world = await server.seed(stock=10)
    now = datetime.now(UTC)
    async with server.app[SESSION_FACTORY].begin() as session:
        earlier = StreamSession(
            room_id=world.room_id,
            node_id="n1",
            video_codec="VP8",
            audio_codec="opus",
            started_at=now - timedelta(hours=3),
            ended_at=now - timedelta(hours=2),
        )
        current = StreamSession(
            room_id=world.room_id, node_id="n1", video_codec="H264", started_at=now - timedelta(minutes=10)
        )
        session.add_all([earlier, current])
    sessions = server.app[SESSION_FACTORY]
    await record_viewers(sessions, {world.room_id: 50}, now - timedelta(hours=2, minutes=30))
    await record_viewers(sessions, {world.room_id: 4}, now - timedelta(minutes=5))
    await record_viewers(sessions, {world.room_id: 8}, now - timedelta(minutes=2))
    base = f"{server.url}/api/rooms/{world.room_id}"
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=5,
            price=300,
        )
        [(_, buyer)] = await guests(http, server.url, 1)
        _, answer = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            buyer,
            {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
        )
        order_id = answer["order"]["order_id"]
        await start_paying(http, server.url, order_id, buyer)
        status, _ = await call(http, "POST", f"{server.url}/api/orders/{order_id}/test-confirm", buyer)
        assert status == 200

        status, _ = await call(http, "GET", f"{base}/streams", buyer)
        assert status == 403
        status, listed = await call(http, "GET", f"{base}/streams", world.tokens["operator"])
        assert status == 200
        assert [s["id"] for s in listed["streams"]] == [current.id, earlier.id]
        assert listed["streams"][0]["ended_at"] is None and listed["streams"][0]["video_codec"] == "H264"
        assert listed["streams"][1]["audio_codec"] == "opus" and listed["streams"][1]["ended_at"] is not None

        status, live = await call(
            http, "GET", f"{base}/dashboard?stream={current.id}", world.tokens["operator"]
        )
        assert status == 200
        assert live["peak_viewers"] == 8 and [v["viewers"] for v in live["viewers"]] == [4, 8]
        [product] = live["products"]
        assert product["buyers"] == 1 and product["tap_conversion"] == 1.0
        assert product["viewer_conversion"] == round(1 / 8, 4)
        assert live["totals"]["gmv_minor"] == 300

        status, past = await call(
            http, "GET", f"{base}/dashboard?stream={earlier.id}", world.tokens["operator"]
        )
        assert past["peak_viewers"] == 50 and past["products"] == [] and past["totals"]["orders"] == 0

        status, csv_text = await call(
            http,
            "GET",
            f"{base}/dashboard?stream={current.id}&format=csv&bucket_s=60",
            world.tokens["operator"],
        )
        header, *rows = csv_text.strip().splitlines()
        assert header == "bucket_start,product_id,orders,paid_orders,units,gmv_minor,viewers"
        assert [row.split(",")[1:] for row in rows] == [
            ["", "0", "0", "0", "0", "4"],
            ["", "0", "0", "0", "0", "8"],
            [str(world.product_id), "1", "1", "1", "300", "0"],
        ]

        other = await server.seed()
        status, body = await call(
            http, "GET", f"{base}/dashboard?stream={earlier.id + 1000}", world.tokens["operator"]
        )
        assert (status, body["error"]["code"]) == (404, "not_found")
        status, _ = await call(http, "GET", f"{base}/streams", other.tokens["operator"])
        assert status == 403


async def test_the_studio_and_the_console_are_not_counted_as_viewers(server):
    world = await server.seed()
    clients = []
    try:
        for role in ("anchor", "operator"):
            staff = await RoomClient.connect(server.room_ws(world.room_id, world.tokens[role]))
            await staff.event("snapshot")
            clients.append(staff)
        for name in ("Ann", "Bo"):
            _, token = await server.guest(name)
            client = await RoomClient.connect(server.room_ws(world.room_id, token))
            snapshot = await client.event("snapshot")
            clients.append(client)
        assert snapshot["data"]["viewers"] == 2
        hub = server.app[HUB]
        assert len(await hub.watchers(world.room_id)) == 4  # staff stay members for draws

        async def sampled() -> int | None:
            async with server.app[SESSION_FACTORY]() as session:
                return await session.scalar(
                    select(RoomViewerSample.viewers).where(
                        RoomViewerSample.room_id == world.room_id, RoomViewerSample.viewers >= 2
                    )
                )

        await wait_for(sampled, message="a sample with both viewers")
        await clients[2].event("presence", viewers=2)
        assert await hub.presence.viewers(world.room_id) == 2
        async with aiohttp.ClientSession() as http:
            status, dashboard = await call(
                http, "GET", f"{server.url}/api/rooms/{world.room_id}/dashboard", world.tokens["operator"]
            )
        assert status == 200 and dashboard["peak_viewers"] == 2
    finally:
        for client in clients:
            await client.close()
