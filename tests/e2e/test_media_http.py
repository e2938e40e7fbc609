"""WHIP/WHEP over HTTP: every bad input gets a precise typed error, the RFC 9725 details (201,
Location, Link, setup:passive, OPTIONS/CORS, PATCH, DELETE), ICE settings, takeover and capacity."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
import testpattern
from aiortc import RTCPeerConnection, RTCRtpSender
from helpers import free_port, wait_for

from livecommerce import accounts
from livecommerce.appkeys import MEDIA, SESSION_FACTORY
from livecommerce.media import ice

pytestmark = [pytest.mark.media, pytest.mark.timeout(120)]


async def make_offer(kinds=("video", "audio"), *, direction="sendonly", only=None) -> str:
    """A real aiortc offer pinned to loopback; `only` keeps one codec per kind by MIME type."""
    pc = RTCPeerConnection(ice.configuration([]))
    try:
        for kind in kinds:
            transceiver = pc.addTransceiver(kind, direction=direction)
            if only and kind in only:
                codecs = RTCRtpSender.getCapabilities(kind).codecs
                transceiver.setCodecPreferences([c for c in codecs if c.mimeType == only[kind]])
        ice.pin_gathering(pc, ["127.0.0.1"])
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def whip_url(server, world) -> str:
    return f"{server.url}/api/rooms/{world.room_id}/whip"


def whep_url(server, world) -> str:
    return f"{server.url}/api/rooms/{world.room_id}/whep"


async def post(http, url, body, *, key=None, content_type="application/sdp", query=""):
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with http.post(url + query, data=body, headers=headers) as response:
        text = await response.text()
        return response.status, response.headers, text


async def error_of(http, url, body, **kwargs) -> tuple[int, str, str]:
    status, _, text = await post(http, url, body, **kwargs)
    error = json.loads(text)["error"]
    return status, error["code"], error["message"]


async def test_whip_refuses_missing_wrong_and_foreign_keys(server):
    world = await server.seed()
    other = await server.seed()
    offer = await make_offer()
    async with aiohttp.ClientSession() as http:
        status, headers, text = await post(http, whip_url(server, world), offer)
        assert (status, json.loads(text)["error"]["code"]) == (401, "unauthorized")
        assert headers["WWW-Authenticate"] == 'Bearer realm="whip"'
        status, headers, text = await post(http, whip_url(server, world), offer, key="not-a-key")
        assert (status, json.loads(text)["error"]["code"]) == (401, "invalid_stream_key")
        assert headers["WWW-Authenticate"] == 'Bearer realm="whip", error="invalid_token"'
        status, code, _ = await error_of(http, whip_url(server, world), offer, key=other.stream_key)
        assert (status, code) == (401, "invalid_stream_key")


async def test_whip_and_whep_refuse_other_content_types(server):
    world = await server.seed()
    offer = await make_offer()
    async with aiohttp.ClientSession() as http:
        for url in (whip_url(server, world), whep_url(server, world)):
            status, code, _ = await error_of(
                http, url, offer, key=world.stream_key, content_type="application/json"
            )
            assert (status, code) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "starts with v=0"),
        (b"hello", "starts with v=0"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", "no ICE credentials"),
    ],
)
async def test_malformed_offers_are_400_with_the_reason(server, body, reason):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        status, code, message = await error_of(http, whip_url(server, world), body, key=world.stream_key)
    assert (status, code) == (400, "invalid_sdp")
    assert reason in message


async def test_offers_without_usable_media_are_refused(server):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        url = whip_url(server, world)
        recvonly = await make_offer(direction="recvonly")
        status, code, message = await error_of(http, url, recvonly, key=world.stream_key)
        assert (status, code) == (400, "invalid_sdp") and "no audio or video to publish" in message

        pcmu_only = await make_offer(("audio",), only={"audio": "audio/PCMU"})
        status, code, message = await error_of(http, url, pcmu_only, key=world.stream_key)
        assert (status, code) == (406, "not_acceptable") and "Opus" in message

        vp9 = (await make_offer(("video",), only={"video": "video/VP8"})).replace("VP8/90000", "VP9/90000")
        status, code, message = await error_of(http, url, vp9, key=world.stream_key)
        assert (status, code) == (406, "not_acceptable") and "VP8 or H.264" in message
    assert server.app[MEDIA].streams == {}


async def test_whip_answer_is_rfc_9725_shaped(server, settings):
    settings.ice_servers = [
        {"urls": "stun:stun.example.net:3478"},
        {"urls": ["turn:turn.example.net:3478"], "username": "u", "credential": "p"},
    ]
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        status, headers, answer = await post(
            http, whip_url(server, world), await make_offer(), key=world.stream_key
        )
        assert status == 201
        assert headers["Content-Type"] == "application/sdp"
        location = headers["Location"]
        assert location.startswith(f"/api/rooms/{world.room_id}/whip/")
        assert "a=setup:passive" in answer
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" 127.0.0.1 " in line for line in candidates)
        assert headers.getall("Link") == [
            '<stun:stun.example.net:3478>; rel="ice-server"',
            '<turn:turn.example.net:3478>; rel="ice-server"; username="u"; credential="p"; '
            'credential-type="password"',
        ]
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "Location" in headers["Access-Control-Expose-Headers"]

        async with http.patch(server.url + location, data=b"a=end-of-candidates") as response:
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method_not_allowed"
            assert response.headers["Allow"] == "DELETE, OPTIONS"
        async with http.options(whip_url(server, world)) as response:
            assert response.status == 204
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
            assert response.headers["Accept-Post"] == "application/sdp"
        async with http.get(f"{server.url}/api/ice-servers") as response:
            assert (await response.json())["ice_servers"] == settings.ice_servers
        async with http.delete(server.url + location) as response:
            assert response.status == 200
        async with http.delete(server.url + location) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"
        async with http.delete(f"{whep_url(server, world)}/nonexistent") as response:
            assert response.status == 404


async def test_announced_addresses_replace_host_addresses_in_the_answer(server, settings):
    settings.rtc_announced_addresses = ["203.0.113.7"]
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        status, headers, answer = await post(
            http, whip_url(server, world), await make_offer(), key=world.stream_key
        )
        assert status == 201
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" 203.0.113.7 " in line for line in candidates)
        async with http.delete(server.url + headers["Location"]):
            pass


async def test_whep_needs_a_live_room(server):
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        status, code, _ = await error_of(
            http, whep_url(server, world), await make_offer(direction="recvonly")
        )
    assert (status, code) == (409, "not_live")


async def second_stream_key(server, world) -> str:
    async with server.app[SESSION_FACTORY].begin() as session:
        _, key = await accounts.create_stream_key(session, room_id=world.room_id)
    return key


async def test_a_publisher_with_another_key_is_refused_while_the_room_is_live_unless_it_takes_over(server):
    world = await server.seed()
    other_key = await second_stream_key(server, world)
    async with aiohttp.ClientSession() as http:
        first = await testpattern.publish(
            http, whip_url(server, world), world.stream_key, video=testpattern.PatternVideoTrack(fps=15)
        )
        viewer = await testpattern.play(http, whep_url(server, world))
        await wait_for(lambda: viewer.video_frames >= 5, timeout=60, message="the viewer plays")

        stream = server.app[MEDIA].streams[world.room_id]
        offer = await make_offer(("video",))
        await wait_for(lambda: time.monotonic() - stream.last_media < 0.2, message="a frame just arrived")
        status, code, message = await error_of(http, whip_url(server, world), offer, key=other_key)
        assert (status, code) == (409, "already_live") and "takeover=1" in message

        second = await testpattern.publish(
            http,
            whip_url(server, world) + "?takeover=1",
            other_key,
            video=testpattern.PatternVideoTrack(fps=15),
        )
        frames = viewer.video_frames
        await wait_for(
            lambda: viewer.video_frames >= frames + 10, timeout=60, message="the new publisher's frames"
        )
        assert stream.resumes == 1 and not viewer.ended.is_set()
        await wait_for(
            lambda: first.pc.connectionState == "closed", timeout=30, message="the old publisher closed"
        )
        for peer in (viewer, second, first):
            await peer.pc.close()


async def test_a_publisher_reconnecting_after_two_seconds_takes_over_at_once(server):
    """A phone whose network dropped comes back before the server noticed (no media for 5 s):
    with its own key it takes over at once, and so does another key of the room once the current
    publisher has gone silent. Viewers carry on."""
    world = await server.seed()
    other_key = await second_stream_key(server, world)
    async with aiohttp.ClientSession() as http:
        phone = await testpattern.publish(
            http, whip_url(server, world), world.stream_key, video=testpattern.PatternVideoTrack(fps=15)
        )
        viewer = await testpattern.play(http, whep_url(server, world))
        await wait_for(lambda: viewer.video_frames >= 5, timeout=60, message="the viewer plays")
        stream = server.app[MEDIA].streams[world.room_id]

        # the same key holder, while its old connection is still up
        reconnected = await testpattern.publish(
            http, whip_url(server, world), world.stream_key, video=testpattern.PatternVideoTrack(fps=15)
        )
        frames = viewer.video_frames
        await wait_for(
            lambda: viewer.video_frames >= frames + 10, timeout=60, message="the reconnected phone"
        )
        assert stream.resumes == 1 and stream.publisher is not None

        # the network drops: no media, no BYE, the connection still looks up for 5 s
        for sender in reconnected.pc.getSenders():
            sender.replaceTrack(None)
        await asyncio.sleep(2)
        assert stream.publisher is not None and stream.state == "live"
        back = await testpattern.publish(
            http, whip_url(server, world), other_key, video=testpattern.PatternVideoTrack(fps=15)
        )
        frames = viewer.video_frames
        await wait_for(lambda: viewer.video_frames >= frames + 10, timeout=60, message="the new publisher")
        assert stream.resumes == 2 and server.app[MEDIA].streams[world.room_id] is stream
        assert not viewer.ended.is_set()
        for peer in (viewer, back, reconnected, phone):
            await peer.pc.close()


async def test_unreachable_ice_servers_do_not_slow_answers(server, settings):
    """ICE_SERVERS are for browsers: the server gathers its own host candidates without them, so
    an unreachable STUN or TURN server (a closed loopback port) costs the answer nothing."""
    closed = free_port()
    settings.ice_servers = [
        {"urls": f"stun:127.0.0.1:{closed}"},
        {"urls": f"turn:127.0.0.1:{closed}", "username": "u", "credential": "p"},
    ]
    settings.rtc_host_addresses = []  # aioice's own gathering, as in a default deployment
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        for url, offer, key in (
            (whip_url(server, world), await make_offer(), world.stream_key),
            (whep_url(server, world), await make_offer(direction="recvonly"), None),
        ):
            started = time.monotonic()
            status, headers, _ = await post(http, url, offer, key=key)
            elapsed = time.monotonic() - started
            assert status == 201
            assert elapsed < 1.5, f"the answer took {elapsed:.1f} s"
            assert len(headers.getall("Link")) == 2  # still offered to the client


async def test_viewers_beyond_the_node_capacity_get_503_with_retry_after(server, settings):
    settings.max_viewers_per_node = 1
    world = await server.seed()
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http, whip_url(server, world), world.stream_key, video=testpattern.PatternVideoTrack(fps=15)
        )
        viewer = await testpattern.play(http, whep_url(server, world))
        status, headers, text = await post(
            http, whep_url(server, world), await make_offer(direction="recvonly")
        )
        assert status == 503
        assert int(headers["Retry-After"]) > 0
        assert '"over_capacity"' in text
        async with http.delete(viewer.location) as response:
            assert response.status == 200
        second = await testpattern.play(http, whep_url(server, world))
        for peer in (second, viewer, publisher):
            await peer.pc.close()
