"""Prize draws on one real server: roles, entries by tap and by chat keyword, the close, the
published record, winners told personally, prize claims, and the verify-draw command."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from helpers import ROOT, wait_for
from prometheus_client import CollectorRegistry
from room_client import RoomClient
from sqlalchemy import update

from livecommerce import accounts
from livecommerce.appkeys import HUB, SESSION_FACTORY
from livecommerce.db.engine import Database
from livecommerce.db.models import Draw, DrawWinner, Order, OrderKind, OrderStatus, Role, Sku, StreamSession
from livecommerce.draws.service import DrawService, StartDraw, draw_record, mentions_keyword
from livecommerce.draws.verification import verify
from livecommerce.errors import AppError
from livecommerce.http import parse
from livecommerce.realtime.hub import Hub

SHIPPING = {
    "name": "Ann Lee",
    "line1": "1 Main St",
    "city": "Springfield",
    "postal_code": "12345",
    "country": "US",
}


def keyword_draw(**overrides) -> dict:
    return {
        "prize_text": "Tea set",
        "winners_count": 1,
        "rule": "keyword",
        "keyword": "tea",
        "duration_seconds": 600,
        **overrides,
    }


async def private(client: RoomClient, type_: str) -> dict:
    """A private event (to one user): it has no room sequence number."""
    return await client.wait(lambda m: m.get("type") == type_ and m.get("seq") is None)


async def joined(server, room_id: int, token: str) -> tuple[RoomClient, dict]:
    """A connected viewer and the snapshot it joined with."""
    client = await RoomClient.connect(server.room_ws(room_id, token))
    return client, (await client.event("snapshot"))["data"]


async def api(method: str, url: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


def test_keyword_matches_whole_words_ignoring_case():
    assert mentions_keyword("I want the TEA please", "tea")
    assert mentions_keyword("tea!", "tea")
    assert not mentions_keyword("steam", "tea")
    assert not mentions_keyword("teapot", "tea")
    assert mentions_keyword("win 🎁 now", "🎁")


def test_start_rules_are_checked():
    for bad in (
        keyword_draw(keyword=None),
        keyword_draw(rule="watching"),
        keyword_draw(prize_text=""),
        keyword_draw(winners_count=0),
        keyword_draw(duration_seconds=0),
        keyword_draw(rule="lottery"),
    ):
        with pytest.raises(AppError) as caught:
            parse(StartDraw, bad)
        assert caught.value.code == "invalid"


async def test_keyword_draw_from_start_to_verified_result(server):
    world = await server.seed()
    guests = [await server.guest(f"Viewer {i}") for i in range(4)]
    clients = [await RoomClient.connect(server.room_ws(world.room_id, token)) for _, token in guests]
    try:
        status, started = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(winners_count=2),
        )
        assert status == 201, started
        assert started["seed"] is None and len(started["seed_commitment"]) == 64
        event = await clients[0].event("draw.started")
        assert event["data"]["seed_commitment"] == started["seed_commitment"]
        assert event["data"]["remaining_seconds"] > 0

        assert (await clients[0].send("draw.enter", {}))["data"] == {
            "draw_id": started["id"],
            "entered": True,
        }
        await clients[1].send("draw.enter", {"draw_id": started["id"]})
        await clients[2].send("chat.send", {"text": "TEA please!"})
        await clients[3].send("chat.send", {"text": "steam"})
        await private(clients[1], "draw.entered")
        assert (await private(clients[2], "draw.entered"))["data"]["draw_id"] == started["id"]

        status, closed = await api(
            "POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["operator"]
        )
        assert status == 200, closed
        assert closed["entrant_count"] == 3 and len(closed["winners"]) == 2
        public = (await clients[3].event("draw.closed"))["data"]
        assert public["seed"] == closed["seed"] and public["winners"] == closed["winners"]

        status, record = await api("GET", f"{server.url}/api/draws/{started['id']}")
        assert status == 200
        assert record["entrants"] == sorted(uid for uid, _ in guests[:3])
        assert verify(record).ok, verify(record).mismatches

        winner_ids = {w["user_id"] for w in record["winners"]}
        for (user_id, _), client in zip(guests, clients, strict=True):
            if user_id in winner_ids:
                won = await private(client, "draw.won")
                assert won["data"]["draw_id"] == started["id"]
        loser = next(c for (uid, _), c in zip(guests, clients, strict=True) if uid not in winner_ids)
        await loser.event("draw.closed")
        assert not loser.events("draw.won")

        status, history = await api("GET", f"{server.url}/api/rooms/{world.room_id}/draws")
        assert status == 200 and history["draws"][0]["id"] == started["id"]
        assert history["draws"][0]["seed"] == record["seed"]
    finally:
        for client in clients:
            await client.close()


async def test_viewers_and_moderators_may_not_start_or_close_a_draw(server):
    world = await server.seed()
    other = await server.seed()
    _, guest = await server.guest()
    url = f"{server.url}/api/rooms/{world.room_id}/draws"
    for token in (guest, world.tokens["moderator"], other.tokens["anchor"]):
        status, body = await api("POST", url, token, keyword_draw())
        assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await api("POST", url, None, keyword_draw())
    assert status == 401
    status, started = await api("POST", url, world.tokens["anchor"], keyword_draw())
    assert status == 201
    for token in (guest, world.tokens["moderator"], other.tokens["operator"]):
        status, body = await api("POST", f"{server.url}/api/draws/{started['id']}/close", token)
        assert (status, body["error"]["code"]) == (403, "forbidden")
    viewer = await RoomClient.connect(server.room_ws(world.room_id, guest))
    try:
        reply = await viewer.send("draw.start", keyword_draw())
        assert reply["error"]["code"] == "forbidden"
    finally:
        await viewer.close()
    status, body = await api("POST", url, world.tokens["operator"], keyword_draw())
    assert (status, body["error"]["code"]) == (409, "conflict"), "one running draw per room"


async def test_duplicate_and_late_entries_are_refused_with_typed_errors(server):
    world = await server.seed()
    _, token = await server.guest()
    _, late_token = await server.guest("Late")
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    late = await RoomClient.connect(server.room_ws(world.room_id, late_token))
    try:
        _, started = await api(
            "POST", f"{server.url}/api/rooms/{world.room_id}/draws", world.tokens["anchor"], keyword_draw()
        )
        assert (await viewer.send("draw.enter", {}))["type"] == "ack"
        assert (await viewer.send("draw.enter", {}))["error"]["code"] == "already_entered"
        staff = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
        assert (await staff.send("draw.enter", {}))["error"]["code"] == "not_eligible"
        await staff.close()
        await api("POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"])
        reply = await late.send("draw.enter", {"draw_id": started["id"]})
        assert reply["error"]["code"] == "draw_closed"
        assert (await late.send("draw.enter", {}))["error"]["code"] == "draw_closed"
        await late.send("chat.send", {"text": "tea"})
        status, body = await api(
            "POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"]
        )
        assert (status, body["error"]["code"]) == (409, "draw_closed")
        _, record = await api("GET", f"{server.url}/api/draws/{started['id']}")
        assert record["entrant_count"] == 1 and verify(record).ok
    finally:
        await viewer.close()
        await late.close()


async def test_minimum_watch_time_is_enforced_and_then_met(server):
    world = await server.seed()
    _, token = await server.guest()
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    try:
        await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(min_watch_seconds=3600),
        )
        reply = await viewer.send("draw.enter", {})
        assert reply["error"]["code"] == "not_eligible"
        assert reply["error"]["details"]["retry_after_seconds"] > 3500
        _, long_draw = await api("GET", f"{server.url}/api/rooms/{world.room_id}/draws")
        await api(
            "POST", f"{server.url}/api/draws/{long_draw['draws'][0]['id']}/close", world.tokens["anchor"]
        )

        await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(min_watch_seconds=1),
        )

        async def entered() -> bool:
            reply = await viewer.send("draw.enter", {})
            if reply["type"] == "error":
                assert reply["error"]["code"] == "not_eligible", reply
                return False
            return True

        await wait_for(entered, timeout=20, interval=0.25, message="the viewer to have watched long enough")
    finally:
        await viewer.close()


async def test_draw_closes_by_itself_when_time_is_up(server):
    world = await server.seed()
    _, token = await server.guest()
    viewer = await RoomClient.connect(server.room_ws(world.room_id, token))
    try:
        _, started = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(duration_seconds=1),
        )
        await viewer.send("draw.enter", {})
        closed = await viewer.event("draw.closed", timeout=15)
        assert closed["data"]["id"] == started["id"]
        assert [w["display_name"] for w in closed["data"]["winners"]] == ["Guest"]
    finally:
        await viewer.close()


async def has_left(hub, room_id: int, user_id: int) -> bool:
    return user_id not in await hub.watchers(room_id)


async def test_watching_rule_enters_viewers_present_at_the_close(server):
    world = await server.seed()
    present = [await server.guest(f"Present {i}") for i in range(3)]
    gone_id, gone_token = await server.guest("Gone")
    clients = [(await joined(server, world.room_id, t))[0] for _, t in present]
    gone, _ = await joined(server, world.room_id, gone_token)
    anchor, _ = await joined(server, world.room_id, world.tokens["anchor"])
    try:
        reply = await anchor.send(
            "draw.start",
            {"prize_text": "Mug", "rule": "watching", "winners_count": 5, "duration_seconds": 600},
        )
        assert reply["type"] == "ack", reply
        assert (await clients[0].send("draw.enter", {}))["error"]["code"] == "invalid"
        await gone.close()
        hub = server.app[HUB]
        await wait_for(lambda: has_left(hub, world.room_id, gone_id), message="the leaver to leave")
        await api("POST", f"{server.url}/api/draws/{reply['data']['id']}/close", world.tokens["anchor"])
        _, record = await api("GET", f"{server.url}/api/draws/{reply['data']['id']}")
        assert record["entrants"] == sorted(uid for uid, _ in present)
        assert sorted(w["user_id"] for w in record["winners"]) == record["entrants"]
        assert verify(record).ok
        late = await clients[0].send("draw.enter", {"draw_id": reply["data"]["id"]})
        assert late["error"]["code"] == "draw_closed"
    finally:
        for client in (*clients, anchor):
            await client.close()


async def test_ordered_rule_enters_buyers_of_the_current_stream(server):
    world = await server.seed()
    buyer, _ = await server.guest("Buyer")
    cancelled, _ = await server.guest("Cancelled")
    earlier, _ = await server.guest("Earlier")
    async with server.app[SESSION_FACTORY].begin() as session:

        def order(user_id: int, status: OrderStatus, key: str, at: datetime | None = None) -> Order:
            return Order(
                merchant_id=world.merchant_id,
                room_id=world.room_id,
                sku_id=world.sku_id,
                user_id=user_id,
                status=status,
                quantity=1,
                unit_price_minor=100,
                amount_minor=100,
                currency="USD",
                idempotency_key=key,
                **({"created_at": at} if at else {}),
            )

        session.add_all(
            [
                StreamSession(
                    room_id=world.room_id, node_id="n1", started_at=datetime.now(UTC) - timedelta(hours=1)
                ),
                order(buyer, OrderStatus.PAID, "a"),
                order(buyer, OrderStatus.RESERVED, "b"),
                order(cancelled, OrderStatus.CANCELLED, "c"),
                order(earlier, OrderStatus.PAID, "d", datetime.now(UTC) - timedelta(days=1)),
            ]
        )
    _, started = await api(
        "POST",
        f"{server.url}/api/rooms/{world.room_id}/draws",
        world.tokens["anchor"],
        {"prize_text": "Cup", "rule": "ordered", "duration_seconds": 60},
    )
    _, closed = await api("POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"])
    _, record = await api("GET", f"{server.url}/api/draws/{started['id']}")
    assert record["entrants"] == [buyer]
    assert [w["user_id"] for w in closed["winners"]] == [buyer]
    assert verify(record).ok


async def test_winner_claims_a_sku_prize_once_and_late_claims_expire(server):
    world = await server.seed(stock=5)
    winner_id, winner_token = await server.guest("Winner")
    _, other_token = await server.guest("Other")
    viewer = await RoomClient.connect(server.room_ws(world.room_id, winner_token))
    try:
        _, started = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(prize_text="", prize_sku_id=world.sku_id),
        )
        assert started["prize"] == {"text": "250 g", "sku_id": world.sku_id}
        await viewer.send("draw.enter", {})
        claim_url = f"{server.url}/api/draws/{started['id']}/claim"
        status, body = await api("POST", claim_url, winner_token, {"shipping": SHIPPING})
        assert (status, body["error"]["code"]) == (403, "forbidden"), "no winners before the close"
        await api("POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"])
        await private(viewer, "draw.won")

        status, body = await api(
            "POST", claim_url, winner_token, {"shipping": {**SHIPPING, "country": "usa"}}
        )
        assert (status, body["error"]["code"]) == (400, "invalid")
        status, body = await api("POST", claim_url, other_token, {"shipping": SHIPPING})
        assert (status, body["error"]["code"]) == (403, "forbidden")
        claims = await asyncio.gather(
            *(api("POST", claim_url, winner_token, {"shipping": SHIPPING}) for _ in range(5))
        )
        assert {status for status, _ in claims} == {200}, claims
        assert len({body["order"]["order_id"] for _, body in claims}) == 1, "claims at once make one order"
        first = claims[0][1]
        assert first["order"]["amount_minor"] == 0 and first["order"]["kind"] == "prize"
        again = await viewer.send("draw.claim", {"draw_id": started["id"], "shipping": SHIPPING})
        assert again["data"]["order"]["order_id"] == first["order"]["order_id"]
        async with server.app[SESSION_FACTORY]() as session:
            assert (await session.get(Sku, world.sku_id)).on_hand == 4
            order = await session.get(Order, first["order"]["order_id"])
            assert (order.kind, order.status, order.user_id) == (OrderKind.PRIZE, OrderStatus.PAID, winner_id)
            assert order.shipping["city"] == "Springfield"
        _, record = await api("GET", f"{server.url}/api/draws/{started['id']}")
        assert record["winners"][0]["claimed"] is True

        # a second draw whose claim window has passed
        _, second = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(prize_sku_id=world.sku_id),
        )
        await viewer.send("draw.enter", {})
        await api("POST", f"{server.url}/api/draws/{second['id']}/close", world.tokens["anchor"])
        async with server.app[SESSION_FACTORY].begin() as session:
            await session.execute(
                update(Draw)
                .where(Draw.id == second["id"])
                .values(claim_deadline=datetime.now(UTC) - timedelta(seconds=1))
            )
        status, body = await api(
            "POST", f"{server.url}/api/draws/{second['id']}/claim", winner_token, {"shipping": SHIPPING}
        )
        assert (status, body["error"]["code"]) == (409, "claim_expired")
        async with server.app[SESSION_FACTORY]() as session:
            assert (await session.get(Sku, world.sku_id)).on_hand == 4
    finally:
        await viewer.close()


async def test_a_claimed_prize_tells_the_room_its_variant_has_one_unit_less(server):
    world = await server.seed(stock=5)
    _, winner_token = await server.guest("Winner")
    status, _ = await api(
        "PUT", f"{server.url}/api/rooms/{world.room_id}/bag/{world.product_id}", world.tokens["anchor"]
    )
    assert status == 200
    watcher = await RoomClient.connect(server.room_ws(world.room_id, winner_token))
    try:
        _, started = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(prize_sku_id=world.sku_id),
        )
        await watcher.ok("draw.enter", {})
        await api("POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"])
        await private(watcher, "draw.won")
        before = len(watcher.events("sku.stock"))
        status, body = await api(
            "POST", f"{server.url}/api/draws/{started['id']}/claim", winner_token, {"shipping": SHIPPING}
        )
        assert status == 200, body
        async with server.app[SESSION_FACTORY]() as session:
            version = (await session.get(Sku, world.sku_id)).stock_version
        event = await watcher.event("sku.stock", sku_id=world.sku_id, available=4)
        assert event["data"] == {
            "sku_id": world.sku_id,
            "product_id": world.product_id,
            "available": 4,
            "version": version,
        }
        assert len(watcher.events("sku.stock")) == before + 1
    finally:
        await watcher.close()


async def test_snapshot_carries_the_running_draw(server):
    world = await server.seed()
    _, token = await server.guest()
    _, started = await api(
        "POST", f"{server.url}/api/rooms/{world.room_id}/draws", world.tokens["anchor"], keyword_draw()
    )
    first, snapshot = await joined(server, world.room_id, token)
    try:
        assert snapshot["draw"]["id"] == started["id"]
        assert snapshot["draw"]["entered"] is False and snapshot["draw"]["seed"] is None
        await first.send("draw.enter", {})
    finally:
        await first.close()
    again, snapshot = await joined(server, world.room_id, token)
    try:
        assert snapshot["draw"]["entered"] is True
        assert snapshot["draw"]["entrant_count"] == 1 and len(snapshot["draw"]["latest_entrants"]) == 1
    finally:
        await again.close()


async def test_entrants_are_announced_live_and_coalesced(server):
    world = await server.seed()
    guests = [await server.guest(f"Entrant {i}") for i in range(12)]
    studio = await RoomClient.connect(server.room_ws(world.room_id, world.tokens["anchor"]))
    clients = [await RoomClient.connect(server.room_ws(world.room_id, token)) for _, token in guests]
    try:
        _, started = await api(
            "POST", f"{server.url}/api/rooms/{world.room_id}/draws", world.tokens["anchor"], keyword_draw()
        )
        await studio.event("draw.started")
        await asyncio.gather(*(client.send("draw.enter", {}) for client in clients[:6]))
        for client in clients[6:]:
            await client.send("chat.send", {"text": "tea"})
            await private(client, "draw.entered")
        last = await studio.wait(
            lambda m: m.get("type") == "draw.entrants" and m["data"]["entrant_count"] == 12
        )
        assert last["seq"] is None and last["data"]["draw_id"] == started["id"]
        assert last["data"]["latest"][0] == "Entrant 11" and len(last["data"]["latest"]) == 5
        announced = studio.events("draw.entrants")
        counts = [event["data"]["entrant_count"] for event in announced]
        assert counts == sorted(counts) and len(announced) < 12
        gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(announced)]
        assert all(gap >= 0.45 for gap in gaps), gaps
        assert (await clients[0].event("draw.entrants"))["data"]["entrant_count"] >= 1
    finally:
        for client in [studio, *clients]:
            await client.close()


async def run_cli(settings, *args: str) -> tuple[int, str, str]:
    """Run the command without blocking the loop that serves the in-process server."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecommerce",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode, stdout.decode(), stderr.decode()


async def test_verify_draw_command_checks_the_database_and_a_server(server, settings):
    world = await server.seed()
    guests = [await server.guest(f"V{i}") for i in range(5)]
    clients = [await RoomClient.connect(server.room_ws(world.room_id, t)) for _, t in guests]
    try:
        _, started = await api(
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            keyword_draw(winners_count=2),
        )
        for client in clients:
            await client.send("draw.enter", {})
        _, closed = await api("POST", f"{server.url}/api/draws/{started['id']}/close", world.tokens["anchor"])
    finally:
        for client in clients:
            await client.close()
    draw_id = str(started["id"])
    code, out, err = await run_cli(settings, "verify-draw", draw_id)
    assert code == 0, err
    assert f"draw {draw_id} verifies" in out
    code, out, err = await run_cli(settings, "verify-draw", draw_id, "--url", server.url)
    assert code == 0, err

    loser = next(uid for uid, _ in guests if uid not in {w["user_id"] for w in closed["winners"]})
    async with server.app[SESSION_FACTORY].begin() as session:
        await session.execute(
            update(DrawWinner)
            .where(DrawWinner.draw_id == started["id"], DrawWinner.rank == 1)
            .values(user_id=loser)
        )
    for source in ((), ("--url", server.url)):
        code, out, err = await run_cli(settings, "verify-draw", draw_id, *source)
        assert code == 1
        assert "does NOT verify" in err and "winners:" in err
    code, out, err = await run_cli(settings, "verify-draw", "999999")
    assert code == 1 and "not_found" in err


async def test_racing_closers_close_a_due_draw_exactly_once(settings):
    """Several nodes' closers (and a staff close) find the same due draw: one closes it, the
    others do nothing, and the room hears `draw.closed` once."""
    db = Database.create(settings.database_url, pool_size=5)
    hub = Hub(settings, db, CollectorRegistry())
    await hub.start()
    try:
        async with db.session_factory.begin() as session:
            merchant = await accounts.create_merchant(session, name="Shop", slug="race-shop")
            room = await accounts.create_room(session, merchant_id=merchant.id, title="Live")
            anchor = await accounts.create_user(
                session,
                login="race-anchor@test",
                password="password123",
                role=Role.ANCHOR,
                display_name="Anchor",
                merchant_id=merchant.id,
            )
            viewers = [await accounts.create_guest(session, f"V{i}") for i in range(6)]
        racers = [
            DrawService(db.session_factory, hub, 0, stock_changed=lambda sku_id: None) for _ in range(4)
        ]
        spec = parse(StartDraw, keyword_draw(winners_count=2))
        started = await racers[0].start(accounts.principal_of(anchor), room.id, spec)
        for viewer in viewers:
            await racers[1].enter(accounts.principal_of(viewer), room.id)
        async with db.session_factory.begin() as session:
            await session.execute(
                update(Draw).where(Draw.id == started["id"]).values(closes_at=datetime.now(UTC))
            )

        async def staff_close() -> int:
            try:
                await racers[3].close(started["id"], by=accounts.principal_of(anchor))
            except AppError as exc:
                assert exc.code == "draw_closed"
                return 0
            return 1

        closed = await asyncio.gather(*(racer.close_due() for racer in racers[:3]), staff_close())
        assert sum(closed) == 1, closed
        history = await hub.history_after(room.id, 0)
        types = [orjson.loads(payload)["type"] for _, payload in history.events]
        assert types.count("draw.closed") == 1, types
        async with db.session_factory() as session:
            record = await draw_record(session, started["id"])
        assert record["entrant_count"] == 6 and len(record["winners"]) == 2
        assert verify(record).ok
    finally:
        await hub.stop()
        await db.close()
