"""Test support: a real server (in-process or as a subprocess) on a real database, and seed data."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from livecommerce import accounts
from livecommerce.app import create_app
from livecommerce.appkeys import SESSION_FACTORY, TOKENS
from livecommerce.config import Settings
from livecommerce.db.embedded import free_port
from livecommerce.db.models import Product, Role, Sku
from livecommerce.http.server import AppRunner

ROOT = Path(__file__).resolve().parent.parent


async def wait_for(
    predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"
) -> Any:
    """Poll until predicate() (sync or async) is truthy; fail with the message after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


@dataclass
class World:
    """Seed data for one test: a merchant with a room, a product with a SKU, and staff tokens."""

    merchant_id: int
    room_id: int
    product_id: int
    sku_id: int
    stream_key: str
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    logins: dict[str, str] = field(default_factory=dict)


@dataclass
class LiveServer:
    """The real app on a real loopback port, in this process."""

    app: web.Application
    runner: web.AppRunner
    url: str

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def room_ws(self, room_id: int, token: str, **params: Any) -> str:
        query = "&".join([f"token={token}", *(f"{k}={v}" for k, v in params.items())])
        return f"{self.ws_url}/ws/rooms/{room_id}?{query}"

    async def guest(self, name: str = "Guest") -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/api/auth/guest", json={"display_name": name}) as response,
        ):
            body = await response.json()
            return body["user"]["id"], body["token"]

    async def seed(self, *, stock: int = 100, price_minor: int = 1999, currency: str = "USD") -> World:
        """Create a merchant, room, product, SKU, stream key and one account per staff role."""
        async with self.app[SESSION_FACTORY].begin() as session:
            suffix = os.urandom(3).hex()
            merchant = await accounts.create_merchant(
                session, name="Shop", slug=f"shop-{suffix}", currency=currency
            )
            room = await accounts.create_room(
                session, merchant_id=merchant.id, title="Live", slug=f"room-{suffix}"
            )
            product = Product(
                merchant_id=merchant.id, name="Green tea", image_url="https://example.com/tea.jpg"
            )
            session.add(product)
            await session.flush()
            sku = Sku(
                product_id=product.id,
                merchant_id=merchant.id,
                code="TEA",
                name="250 g",
                price_minor=price_minor,
                currency=currency,
                on_hand=stock,
            )
            session.add(sku)
            _, key = await accounts.create_stream_key(session, room_id=room.id)
            world = World(merchant.id, room.id, product.id, 0, key)
            for role in (Role.ANCHOR, Role.OPERATOR, Role.MODERATOR, Role.ADMIN):
                user = await accounts.create_user(
                    session,
                    login=f"{role.value}-{suffix}@test",
                    password="password123",
                    role=role,
                    display_name=role.value.title(),
                    merchant_id=None if role is Role.ADMIN else merchant.id,
                )
                world.tokens[role.value] = self.app[TOKENS].issue(accounts.principal_of(user))
                world.user_ids[role.value] = user.id
                world.logins[role.value] = user.login
            await session.flush()
            world.sku_id = sku.id
        return world


async def start_server(settings: Settings) -> LiveServer:
    app = create_app(settings)
    runner = AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    port = runner.addresses[0][1]
    return LiveServer(app=app, runner=runner, url=f"http://127.0.0.1:{port}")


@dataclass
class ServerProcess:
    """`livecommerce serve` as a real child process."""

    proc: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def spawn_server(
    env: dict[str, str],
    *args: str,
    data_dir: Path,
    port: int | None = None,
    timeout: float = 60,
    python: str = sys.executable,
    cwd: Path = ROOT,
) -> ServerProcess:
    """Start `python -m livecommerce serve` and wait until /healthz answers."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}.log"
    full_env = {**os.environ, **env, "PORT": str(port), "DATA_DIR": str(data_dir)}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [python, "-m", "livecommerce", "serve", *args],
            env=full_env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                if b"200" in sock.recv(64):
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"server did not become healthy in {timeout}s:\n{server.log()}")


async def recvonly_offer() -> str:
    """A WHEP offer (recvonly video and audio, loopback candidates) whose peer is closed at once:
    for requests that are meant to be refused."""
    from aiortc import RTCPeerConnection

    from livecommerce.media import ice

    pc = RTCPeerConnection(ice.configuration([]))
    for kind in ("video", "audio"):
        pc.addTransceiver(kind, direction="recvonly")
    ice.pin_gathering(pc, ["127.0.0.1"])
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    return offer
