"""The baseline for the WebRTC viewers load test: aiortc's stock fan-out, as its examples do it.

The publisher's tracks are decoded by aiortc's receiver and shared through `MediaRelay`; every
viewer's sender encodes the decoded frames again. Same URLs as livecommerce (WHIP/WHEP on
`/api/rooms/1/...`), no authentication, no database; ICE is pinned to the given host addresses
with the same helper livecommerce uses, so both servers see identical networking.

    python loadtests/mediarelay_server.py --port 8090
"""

from __future__ import annotations

import argparse

from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

from livecommerce.media import ice

HOST_ADDRESSES = ["127.0.0.1"]
RELAY = web.AppKey("relay", MediaRelay)
TRACKS = web.AppKey("tracks", dict)
PEERS = web.AppKey("peers", set)


async def _answer(request: web.Request, pc: RTCPeerConnection) -> web.Response:
    offer = ice.scope_candidates(await request.text(), HOST_ADDRESSES)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    ice.pin_gathering(pc, HOST_ADDRESSES)
    await pc.setLocalDescription(await pc.createAnswer())
    request.app[PEERS].add(pc)
    return web.Response(
        status=201,
        body=pc.localDescription.sdp.encode(),
        headers={"Content-Type": "application/sdp", "Location": f"{request.path}/{id(pc)}"},
    )


async def whip(request: web.Request) -> web.Response:
    pc = RTCPeerConnection(ice.configuration([]))
    tracks = request.app[TRACKS]

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        tracks[track.kind] = track

    return await _answer(request, pc)


async def whep(request: web.Request) -> web.Response:
    tracks = request.app[TRACKS]
    if "video" not in tracks:
        return web.json_response({"error": {"code": "not_live", "message": "not live"}}, status=409)
    pc = RTCPeerConnection(ice.configuration([]))
    for kind in ("video", "audio"):
        if kind in tracks:
            pc.addTrack(request.app[RELAY].subscribe(tracks[kind]))
    return await _answer(request, pc)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _close_peers(app: web.Application) -> None:
    for pc in list(app[PEERS]):
        await pc.close()


def make_app() -> web.Application:
    app = web.Application()
    app[RELAY] = MediaRelay()
    app[TRACKS] = {}
    app[PEERS] = set()
    app.router.add_post("/api/rooms/{room_id}/whip", whip)
    app.router.add_post("/api/rooms/{room_id}/whep", whep)
    app.router.add_get("/healthz", healthz)
    app.on_shutdown.append(_close_peers)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
