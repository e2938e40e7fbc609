"""Chat badges from the server's roles, unique guest names, likes and follows against the real server."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from helpers import start_server
from room_client import RoomClient
from valkey_fixture import redis_url, valkey  # noqa: F401

from livecommerce import accounts
from livecommerce.appkeys import SESSION_FACTORY, TOKENS
from livecommerce.db.models import Role


async def joined(server, room_id: int, token: str) -> tuple[RoomClient, dict]:
    client = await RoomClient.connect(server.room_ws(room_id, token))
    return client, (await client.event("snapshot"))["data"]


async def viewer_token(server, name: str = "Vera") -> str:
    async with server.app[SESSION_FACTORY].begin() as session:
        user = await accounts.create_user(
            session, login=f"{name.lower()}@test", password="password123", role=Role.VIEWER, display_name=name
        )
        return server.app[TOKENS].issue(accounts.principal_of(user))


async def test_chat_badge_comes_from_the_role_not_the_display_name(server):
    world = await server.seed()
    _, guest_token = await server.guest("Anchor")
    guest, _ = await joined(server, world.room_id, guest_token)
    anchor, _ = await joined(server, world.room_id, world.tokens["anchor"])
    moderator, _ = await joined(server, world.room_id, world.tokens["moderator"])
    await guest.ok("chat.send", {"text": "I am the anchor"})
    await anchor.ok("chat.send", {"text": "welcome"})
    await moderator.ok("chat.send", {"text": "be nice"})
    badges = {
        text: (await guest.event("chat.message", text=text))["data"]["badge"]
        for text in ("I am the anchor", "welcome", "be nice")
    }
    assert badges == {"I am the anchor": None, "welcome": "anchor", "be nice": "staff"}
    late, snapshot = await joined(server, world.room_id, guest_token)
    assert [(m["text"], m["badge"]) for m in snapshot["chat"]] == [
        ("I am the anchor", None),
        ("welcome", "anchor"),
        ("be nice", "staff"),
    ]
    for client in (guest, anchor, moderator, late):
        await client.close()


async def test_two_guests_with_one_name_never_show_the_same_name_in_a_room(server):
    world = await server.seed()
    _, first_token = await server.guest("Ann")
    _, second_token = await server.guest("ann ")
    first, first_snapshot = await joined(server, world.room_id, first_token)
    second, second_snapshot = await joined(server, world.room_id, second_token)
    assert first_snapshot["you"]["display_name"] == "Ann"
    assert second_snapshot["you"]["display_name"] == "ann 2"
    await second.ok("chat.send", {"text": "hello"})
    assert (await first.event("chat.message", text="hello"))["data"]["display_name"] == "ann 2"
    again, again_snapshot = await joined(server, world.room_id, second_token)
    assert again_snapshot["you"]["display_name"] == "ann 2"  # a reconnect keeps the name
    for client in (first, second, again):
        await client.close()


async def test_concurrent_likes_from_many_clients_add_up_exactly(server):
    world = await server.seed()
    clients = []
    for n in range(5):
        _, token = await server.guest(f"Fan {n}")
        clients.append((await joined(server, world.room_id, token))[0])

    async def tap(client: RoomClient) -> None:
        await asyncio.gather(*(client.ok("like", {"count": count}) for count in range(1, 9)))

    await asyncio.gather(*(tap(client) for client in clients))
    expected = 5 * sum(range(1, 9))
    for client in clients:
        await client.event("likes", total=expected)
        totals = [event["data"]["total"] for event in client.events("likes")]
        assert totals == sorted(totals)
        assert len(totals) < 5 * 8, "likes are announced per tick, not per send"
    _, token = await server.guest("Late")
    late, snapshot = await joined(server, world.room_id, token)
    assert snapshot["likes"] == {"total": expected}
    for client in (*clients, late):
        await client.close()


async def test_bad_or_too_fast_likes_are_refused_with_a_code(server):
    world = await server.seed()
    _, token = await server.guest("Tapper")
    client, _ = await joined(server, world.room_id, token)
    for count in (0, 51, "many", None):
        refused = await client.send("like", {"count": count})
        assert refused["error"]["code"] == "invalid", refused
    replies = await asyncio.gather(*(client.send("like", {"count": 1}) for _ in range(20)))
    limited = [r for r in replies if r["type"] == "error"]
    assert limited and all(r["error"]["code"] == "rate_limited" for r in limited)
    assert all(r["error"]["details"]["retry_after"] >= 0 for r in limited)
    accepted = len(replies) - len(limited)
    await client.event("likes", total=accepted)
    await client.close()


@pytest.mark.multinode
async def test_likes_on_two_nodes_share_one_exact_total(settings, redis_url):  # noqa: F811
    nodes = [
        await start_server(settings.model_copy(update={"redis_url": redis_url, "node_id": f"node-{n}"}))
        for n in range(2)
    ]
    try:
        world = await nodes[0].seed()
        clients = []
        for n in range(6):
            node = nodes[n % 2]
            _, token = await node.guest(f"Fan {n}")
            clients.append((await joined(node, world.room_id, token))[0])
        await asyncio.gather(
            *(client.ok("like", {"count": count}) for client in clients for count in (3, 5, 7))
        )
        for client in clients:
            await client.event("likes", total=6 * 15)
        for node in nodes:
            _, token = await node.guest("Late")
            late, snapshot = await joined(node, world.room_id, token)
            assert snapshot["likes"] == {"total": 90}
            await late.close()
        _, ann_token = await nodes[0].guest("Ann")
        _, other_ann_token = await nodes[1].guest("Ann")
        ann, ann_snapshot = await joined(nodes[0], world.room_id, ann_token)
        other, other_snapshot = await joined(nodes[1], world.room_id, other_ann_token)
        assert {ann_snapshot["you"]["display_name"], other_snapshot["you"]["display_name"]} == {
            "Ann",
            "Ann 2",
        }
        for client in (*clients, ann, other):
            await client.close()
    finally:
        for node in nodes:
            await node.runner.cleanup()


async def test_signed_in_viewers_follow_and_unfollow_and_guests_are_asked_to_sign_in(server):
    world = await server.seed()
    token = await viewer_token(server)
    _, guest_token = await server.guest("Gus")
    url = f"{server.url}/api/rooms/{world.room_id}/follow"
    watcher, _ = await joined(server, world.room_id, guest_token)

    async def call(method: str, bearer: str | None, target: str = url) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        async with aiohttp.ClientSession() as http, http.request(method, target, headers=headers) as response:
            return response.status, await response.json()

    assert await call("POST", token) == (200, {"room_id": world.room_id, "followers": 1, "following": True})
    assert (await call("POST", token))[1]["followers"] == 1  # following twice is one follow
    assert (await call("POST", world.tokens["anchor"]))[1]["followers"] == 2
    followers_event = await watcher.event("followers", followers=2)
    assert followers_event["seq"] is None
    _, snapshot = await joined(server, world.room_id, token)
    assert snapshot["follow"] == {"followers": 2, "following": True}
    status, body = await call("POST", guest_token)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "sign in" in body["error"]["message"]
    _, guest_snapshot = await joined(server, world.room_id, guest_token)
    assert guest_snapshot["follow"] == {"followers": 2, "following": False}
    assert (await call("POST", None))[0] == 401
    missing = f"{server.url}/api/rooms/999999/follow"
    assert (await call("POST", token, missing))[1]["error"]["code"] == "not_found"
    assert await call("DELETE", token) == (
        200,
        {"room_id": world.room_id, "followers": 1, "following": False},
    )
    assert (await call("DELETE", token))[1]["followers"] == 1
    await watcher.event("followers", followers=1)
    await watcher.close()
