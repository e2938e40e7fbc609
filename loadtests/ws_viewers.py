"""Room WebSocket fan-out: N viewers in one room, chat at R/s plus commerce events at S/s.

Runs the same scenario against livecommerce (`livecommerce serve`) and the baseline
(python-socketio's AsyncServer on aiohttp, `loadtests/socketio_room_server.py`), each as a
child process, with the viewers spread over several client processes. For each audience size
it reports delivery latency p50/p95/p99 per class (server publish time to client receipt),
messages lost per class (commerce must be 0), server CPU and memory per connection. A size is
*sustainable* when every viewer stayed connected, no commerce event was lost and p99 < 250 ms.

    python loadtests/ws_viewers.py --viewers 250,500,1000,2000,3000 --duration 10
    python loadtests/ws_viewers.py --smoke          # seconds; what the test suite runs

The commerce class is `card.pinned` on livecommerce (an anchor pinning a card: a database
write, an audit row and the card query per event) and `stock` on the baseline. The load
server gets CHAT_RATE_PER_SECOND raised, because one account speaks for the whole audience.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import orjson
import psutil
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS,
    ServerProcess,
    free_port,
    machine_info,
    percentiles,
    post_json,
    spawn,
    write_results,
)
from _wsclient import LeanWebSocket, OnText, connect

P99_TARGET_MS = 250.0
CHAT, COMMERCE = "chat", "commerce"
ROOM_NAME = "live"


# -- what each server speaks -----------------------------------------------------------------


class RoomProtocol:
    """livecommerce's room protocol: JSON objects or arrays of them, `ts` on every event."""

    name = "livecommerce"
    classes: ClassVar[dict[str, str]] = {"chat.message": CHAT, "card.pinned": COMMERCE}

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = target

    def path(self, index: int) -> str:
        tokens = self.target["viewer_tokens"]
        return f"{self.target['path']}?token={tokens[index % len(tokens)]}"

    def viewer(self, tally: Tally, joined: asyncio.Future[None]) -> OnText:
        classes = self.classes

        def on_text(payload: bytes, now: float, send: Callable[[str], None]) -> None:
            decoded = orjson.loads(payload)
            for message in decoded if isinstance(decoded, list) else (decoded,):
                cls = classes.get(message.get("type"))
                if cls is not None:
                    tally.record(cls, self.key(cls, message), now)
                elif message.get("type") == "snapshot" and not joined.done():
                    joined.set_result(None)

        return on_text

    async def open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        first = orjson.loads((await ws.receive()).data)
        if first.get("type") != "snapshot":
            raise RuntimeError(f"expected a snapshot, got {first}")

    maps_commerce_by_seq = True

    def publisher_events(self, text: str) -> list[tuple[str | None, int | None, int | None]]:
        """(event type, key, None) for measured events; (None, None, n) when pin n failed."""
        decoded = orjson.loads(text)
        found: list[tuple[str | None, int | None, int | None]] = []
        for message in decoded if isinstance(decoded, list) else (decoded,):
            kind = message.get("type")
            if kind == "error" and str(message.get("id", "")).startswith("p"):
                found.append((None, None, int(message["id"][1:])))
            elif kind in self.classes:
                found.append((kind, self.key(self.classes[kind], message), None))
        return found

    @staticmethod
    def key(cls: str, message: dict[str, Any]) -> int:
        """Chat: the publisher's message number; commerce: the event's seq (mapped later)."""
        return int(message["data"]["text"][5:]) if cls == CHAT else message["seq"]

    def publisher_url(self) -> str:
        return (
            f"ws://127.0.0.1:{self.target['port']}{self.target['path']}?token={self.target['anchor_token']}"
        )

    def chat_frame(self, n: int) -> str:
        return orjson.dumps({"id": f"c{n}", "type": "chat.send", "data": {"text": f"chat {n}"}}).decode()

    def commerce_frame(self, n: int) -> str:
        data = {"product_id": self.target["product_id"]}
        return orjson.dumps({"id": f"p{n}", "type": "card.pin", "data": data}).decode()


class SocketioProtocol:
    """Engine.IO v4 over a WebSocket, spoken directly so the client side stays cheap."""

    name = "python-socketio"
    classes: ClassVar[dict[str, str]] = {"chat.message": CHAT, "stock": COMMERCE}
    join = '42["join","' + ROOM_NAME + '"]'

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = target

    def path(self, index: int) -> str:
        return self.target["path"]

    def viewer(self, tally: Tally, joined: asyncio.Future[None]) -> OnText:
        classes = self.classes

        def on_text(payload: bytes, now: float, send: Callable[[str], None]) -> None:
            if payload.startswith(b"42"):
                name, data = orjson.loads(payload[2:])
                cls = classes.get(name)
                if cls is not None:
                    tally.record(cls, self.key(cls, data), now)
            elif payload == b"2":
                send("3")
            elif payload.startswith(b"40"):
                send(self.join)
                joined.set_result(None)
            elif payload.startswith(b"0"):
                send("40")

        return on_text

    async def open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        opened = (await ws.receive()).data
        if not opened.startswith("0"):
            raise RuntimeError(f"expected an Engine.IO open packet, got {opened!r}")
        await ws.send_str("40")
        while not (await ws.receive()).data.startswith("40"):
            pass
        await ws.send_str(self.join)

    maps_commerce_by_seq = False

    def publisher_events(self, text: str) -> list[tuple[str | None, int | None, int | None]]:
        """Stock events carry the publisher's own number, so nothing needs mapping."""
        return []

    @staticmethod
    def key(cls: str, data: dict[str, Any]) -> int:
        return int(data["text"][5:]) if cls == CHAT else data["n"]

    def publisher_url(self) -> str:
        return f"ws://127.0.0.1:{self.target['port']}{self.target['path']}"

    def chat_frame(self, n: int) -> str:
        return "42" + orjson.dumps(["chat", {"room": ROOM_NAME, "text": f"chat {n}"}]).decode()

    def commerce_frame(self, n: int) -> str:
        return "42" + orjson.dumps(["stock", {"room": ROOM_NAME, "n": n}]).decode()


PROTOCOLS = {"livecommerce": RoomProtocol, "baseline": SocketioProtocol}


# -- viewers (in client processes) -----------------------------------------------------------


@dataclass
class Tally:
    """What one client process received: per class, the message keys and arrival times."""

    keys: dict[str, array] = field(default_factory=lambda: {CHAT: array("q"), COMMERCE: array("q")})
    arrivals: dict[str, array] = field(default_factory=lambda: {CHAT: array("d"), COMMERCE: array("d")})

    def record(self, cls: str, key: int, now: float) -> None:
        self.keys[cls].append(key)
        self.arrivals[cls].append(now)

    def latencies(self, sent: dict[str, dict[int, float]]) -> dict[str, array]:
        """Milliseconds from the publisher's send to arrival, for the measured messages only."""
        result = {}
        for cls, keys in self.keys.items():
            table = sent[cls]
            pairs = zip(keys, self.arrivals[cls], strict=True)
            result[cls] = array("d", ((at - table[key]) * 1000 for key, at in pairs if key in table))
        return result


async def _client_main(
    pipe: Connection, target_name: str, target: dict[str, Any], first: int, count: int
) -> None:
    proto = PROTOCOLS[target_name](target)
    tally = Tally()
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(64)  # connection attempts in flight
    sockets: list[LeanWebSocket] = []

    async def start(slot: int) -> None:
        async with gate:
            joined: asyncio.Future[None] = loop.create_future()
            try:
                ws = await connect(
                    "127.0.0.1", target["port"], proto.path(first + slot), proto.viewer(tally, joined)
                )
                await asyncio.wait_for(joined, 60)
            except (OSError, ConnectionError, TimeoutError):
                return
            sockets.append(ws)

    await asyncio.gather(*(start(slot) for slot in range(count)))
    pipe.send(("connected", len(sockets)))
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "report":
            latencies = tally.latencies(command[1])
            pipe.send(
                (
                    "report",
                    {
                        "latencies": {cls: values.tobytes() for cls, values in latencies.items()},
                        "disconnected": sum(1 for ws in sockets if ws.closed.done()),
                    },
                )
            )
            for ws in sockets:
                if ws.transport is not None:
                    ws.transport.close()
            return


def client_process(
    pipe: Connection, target_name: str, target: dict[str, Any], first: int, count: int
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client_main(pipe, target_name, target, first, count))


# -- the publisher (in the parent) -----------------------------------------------------------


# Each publishing connection stays well under the room protocol's 20 commands per second.
COMMANDS_PER_PUBLISHER_PER_SECOND = 10


async def publish(
    proto: Any, chat_rate: float, commerce_rate: float, duration: float, drain: float
) -> dict[str, Any]:
    """Send chat and commerce at fixed rates for `duration`; return when each was sent.

    Chat goes out round robin over enough connections to respect the per-connection command
    limit; commerce goes out on one connection, which also watches the room: on livecommerce
    it maps each `card.pinned` seq to the pin that caused it (pins on one connection are
    handled in order), so commerce arrivals can be matched to their send time.
    """
    sent: dict[str, dict[int, float]] = {CHAT: {}, COMMERCE: {}}
    keyed: dict[str, dict[int, float]] = {CHAT: sent[CHAT], COMMERCE: {}}
    pins_in_flight: list[int] = []
    chatters = max(1, math.ceil(chat_rate / COMMANDS_PER_PUBLISHER_PER_SECOND))

    async def watch(ws: aiohttp.ClientWebSocketResponse, maps_commerce: bool) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT or not maps_commerce:
                continue
            for kind, key, failed in proto.publisher_events(message.data):
                if failed is not None and failed in pins_in_flight:
                    pins_in_flight.remove(failed)
                elif proto.classes.get(kind) == COMMERCE and pins_in_flight:
                    keyed[COMMERCE][key] = sent[COMMERCE][pins_in_flight.pop(0)]

    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(proto.publisher_url(), max_msg_size=0) for _ in range(chatters + 1)]
        for ws in sockets:
            await proto.open(ws)
        commerce_ws, chat_sockets = sockets[0], sockets[1:]
        readers = [asyncio.create_task(watch(ws, ws is commerce_ws)) for ws in sockets]
        start = time.time() + 0.2
        schedule = sorted(
            [(start + i / chat_rate, CHAT, i) for i in range(int(duration * chat_rate))]
            + [(start + (i + 0.5) / commerce_rate, COMMERCE, i) for i in range(int(duration * commerce_rate))]
        )
        for at, cls, n in schedule:
            await asyncio.sleep(max(0.0, at - time.time()))
            if cls == COMMERCE:
                pins_in_flight.append(n)
                sent[cls][n] = time.time()
                await commerce_ws.send_str(proto.commerce_frame(n))
            else:
                sent[cls][n] = time.time()
                await chat_sockets[n % chatters].send_str(proto.chat_frame(n))
        await asyncio.sleep(drain)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()
    if not proto.maps_commerce_by_seq:
        keyed[COMMERCE] = sent[COMMERCE]
    return {"sent": {cls: len(table) for cls, table in sent.items()}, "keyed": keyed}


# -- one measured point ----------------------------------------------------------------------


def _cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds used so far by the load generator's client processes."""
    return sum(t.user + t.system for t in (p.cpu_times() for p in processes))


def measure(
    server: ServerProcess,
    target_name: str,
    target: dict[str, Any],
    viewers: int,
    args: argparse.Namespace,
    bar: tqdm,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    processes = max(1, min(args.client_processes, viewers))
    shares = [viewers // processes + (1 if i < viewers % processes else 0) for i in range(processes)]
    rss_before = server.rss_bytes()
    pipes, children, first = [], [], 0
    for share in shares:
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(
            target=client_process, args=(child_end, target_name, target, first, share), daemon=True
        )
        child.start()
        pipes.append(parent_end)
        children.append(child)
        first += share
    bar.set_postfix_str(f"{target_name} {viewers}: connecting")
    connected = sum(pipe.recv()[1] for pipe in pipes)
    time.sleep(args.settle)
    rss_after = server.rss_bytes()
    bar.set_postfix_str(f"{target_name} {viewers}: measuring")
    proto = PROTOCOLS[target_name](target)
    clients = [psutil.Process(child.pid) for child in children]
    cpu_before, clients_before, wall_before = server.cpu_seconds(), _cpu(clients), time.monotonic()
    published = asyncio.run(publish(proto, args.chat_rate, args.commerce_rate, args.duration, args.drain))
    wall = time.monotonic() - wall_before
    cpu_used, clients_used = server.cpu_seconds() - cpu_before, _cpu(clients) - clients_before
    reports = []
    for pipe in pipes:
        pipe.send(("report", published["keyed"]))
        reports.append(pipe.recv()[1])
    for child in children:
        child.join(30)
        if child.is_alive():
            child.kill()

    latencies: dict[str, list[float]] = {CHAT: [], COMMERCE: []}
    for report in reports:
        for cls, raw in report["latencies"].items():
            values = array("d")
            values.frombytes(raw)
            latencies[cls].extend(values)
    received = {cls: len(values) for cls, values in latencies.items()}
    # every message sent should reach every connected viewer before the drain ends
    expected = {cls: published["sent"][cls] * connected for cls in received}
    lost = {cls: max(0, expected[cls] - received[cls]) for cls in received}
    every = latencies[CHAT] + latencies[COMMERCE]
    result = {
        "target": target_name,
        "viewers": viewers,
        "connected": connected,
        "disconnected_during_run": sum(r["disconnected"] for r in reports),
        "published": published["sent"],
        "delivered": received,
        "lost": lost,
        "latency_ms": {
            "all": percentiles(every),
            CHAT: percentiles(latencies[CHAT]),
            COMMERCE: percentiles(latencies[COMMERCE]),
        },
        "server_cpu_percent": round(100 * cpu_used / wall, 1),
        "client_processes_cpu_percent": round(100 * clients_used / wall, 1),
        "server_rss_mb": round(rss_after / 2**20, 1),
        "rss_per_connection_kb": round((rss_after - rss_before) / 1024 / max(1, connected), 1),
    }
    p99 = result["latency_ms"]["all"]["p99"]
    result["sustainable"] = bool(
        connected == viewers
        and result["disconnected_during_run"] == 0
        and lost[COMMERCE] == 0
        and published["sent"][COMMERCE] > 0
        and p99 is not None
        and p99 < P99_TARGET_MS
    )
    return result


# -- the servers -----------------------------------------------------------------------------


def start_livecommerce(work: Path, args: argparse.Namespace) -> tuple[ServerProcess, dict[str, Any]]:
    port = free_port()
    data_dir = work / "livecommerce"
    env = {
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "CHAT_RATE_PER_SECOND": "1000",
        "CHAT_BURST": "1000",
        "GUESTS_PER_MINUTE": "0",  # every simulated viewer signs up from this one address
    }
    server = spawn(
        "livecommerce", ["-m", "livecommerce", "serve", "--demo"], env=env, port=port, log_dir=work
    )
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    anchor = demo["logins"]["anchor"]
    login = post_json(
        f"{server.url}/api/auth/login", {"login": anchor["login"], "password": anchor["password"]}
    )
    guests = [
        post_json(f"{server.url}/api/auth/guest", {"display_name": f"viewer {i}"})["token"]
        for i in range(args.guest_accounts)
    ]
    target = {
        "port": port,
        "path": f"/ws/rooms/{demo['room_id']}",
        "anchor_token": login["token"],
        "viewer_tokens": guests,
        "product_id": demo["products"][0]["id"],
    }
    return server, target


def start_baseline(work: Path) -> tuple[ServerProcess, dict[str, Any]]:
    port = free_port()
    script = str(Path(__file__).resolve().parent / "socketio_room_server.py")
    server = spawn("baseline", [script, "--port", str(port)], env={}, port=port, log_dir=work)
    return server, {"port": port, "path": "/socket.io/?EIO=4&transport=websocket"}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency_ax, cpu_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, marker, color in (("livecommerce", "o", "tab:blue"), ("baseline", "s", "tab:orange")):
        points = [r for r in results if r["target"] == name and r["latency_ms"]["all"]["p99"] is not None]
        label = "livecommerce" if name == "livecommerce" else "python-socketio (baseline)"
        xs = [r["viewers"] for r in points]
        for point, style in (("p99", "-"), ("p50", ":")):
            ys = [r["latency_ms"]["all"][point] for r in points]
            latency_ax.plot(xs, ys, marker=marker, color=color, linestyle=style, label=f"{label} {point}")
        cpu_ax.plot(xs, [r["server_cpu_percent"] for r in points], marker=marker, color=color, label=label)
    latency_ax.axhline(P99_TARGET_MS, color="red", linewidth=0.8, label="250 ms")
    latency_ax.set(
        xlabel="viewers in one room",
        ylabel="delivery latency (ms)",
        yscale="log",
        title="Room fan-out latency",
    )
    cpu_ax.set(xlabel="viewers in one room", ylabel="server CPU (% of one core)", title="Server CPU")
    latency_ax.legend(fontsize=7)
    cpu_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", default="250,500,1000,2000,3000", help="comma list of audience sizes")
    parser.add_argument("--chat-rate", type=float, default=20.0, help="chat messages per second (R)")
    parser.add_argument("--commerce-rate", type=float, default=5.0, help="commerce events per second (S)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per size")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between connecting and measuring")
    parser.add_argument(
        "--drain", type=float, default=3.0, help="seconds after the last send before counting"
    )
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument(
        "--guest-accounts", type=int, default=20, help="viewer identities, shared round robin"
    )
    parser.add_argument("--targets", default="livecommerce,baseline")
    parser.add_argument(
        "--keep-going", action="store_true", help="measure sizes past the first unsustainable one"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="a few viewers for a few seconds")
    args = parser.parse_args(argv)
    if args.smoke:
        args.viewers, args.duration, args.settle, args.guest_accounts = "10", 2.0, 0.5, 3
    sizes = [int(v) for v in args.viewers.split(",")]
    targets = args.targets.split(",")
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="ws-viewers-") as tmp,
        tqdm(total=len(sizes) * len(targets), unit="size", desc="room fan-out", file=sys.stderr) as bar,
    ):
        work = Path(tmp)
        for name in targets:
            bar.set_postfix_str(f"{name}: starting")
            server, target = (
                start_livecommerce(work, args) if name == "livecommerce" else start_baseline(work)
            )
            try:
                for size in sizes:
                    result = measure(server, name, target, size, args, bar)
                    results.append(result)
                    bar.update(1)
                    tqdm.write(
                        f"{name:13} {size:6} viewers: p50/p95/p99 {result['latency_ms']['all']['p50']}/"
                        f"{result['latency_ms']['all']['p95']}/{result['latency_ms']['all']['p99']} ms, "
                        f"lost chat {result['lost'][CHAT]} commerce {result['lost'][COMMERCE]}, "
                        f"cpu server {result['server_cpu_percent']}% "
                        f"clients {result['client_processes_cpu_percent']}%, "
                        f"{result['rss_per_connection_kb']} KiB/conn"
                        f"{'' if result['sustainable'] else '  (not sustainable)'}",
                        file=sys.stderr,
                    )
                    if not result["sustainable"] and not args.keep_going:
                        bar.update(len(sizes) - sizes.index(size) - 1)
                        break
            finally:
                server.stop()

    def best(name: str) -> int:
        return max((r["viewers"] for r in results if r["target"] == name and r["sustainable"]), default=0)

    ours, baseline = best("livecommerce"), best("baseline")
    summary = {
        "livecommerce_max_sustainable_viewers": ours,
        "baseline_max_sustainable_viewers": baseline,
        "ratio": round(ours / baseline, 2) if baseline else None,
        "criterion": f"all connected, no commerce loss, p99 < {P99_TARGET_MS:g} ms",
    }
    params = {k: v for k, v in vars(args).items() if k != "results_dir"}
    path = write_results(
        "ws_viewers",
        {"machine": machine_info(), "params": params, "runs": results, "summary": summary},
        args.results_dir,
    )
    plot(results, path.with_suffix(".png"))
    print(orjson.dumps({"results": str(path), **summary}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
