"""The baseline for the room fan-out load test: python-socketio's AsyncServer on aiohttp.

What a Python developer would write for a live room: viewers join a socket.io room, chat and
stock updates are broadcast to it with `sio.emit(..., room=...)`. Events carry the server
time when they are emitted, like the room events of livecommerce.
"""

from __future__ import annotations

import argparse
import time

import socketio
from aiohttp import web


def make_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)

    @sio.event
    async def join(sid: str, room: str) -> None:
        await sio.enter_room(sid, room)

    @sio.event
    async def chat(sid: str, data: dict) -> None:
        await sio.emit("chat.message", {"text": data["text"], "ts": time.time()}, room=data["room"])

    @sio.event
    async def stock(sid: str, data: dict) -> None:
        await sio.emit("stock", {"n": data["n"], "ts": time.time()}, room=data["room"])

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
