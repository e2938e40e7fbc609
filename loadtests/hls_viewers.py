"""HLS viewers beside WebRTC viewers: one publisher (720p H.264 at about 1.5 Mbit/s, 30 fps, plus
Opus) on one livecommerce node, then N WebRTC viewers, then N HLS viewers, in the same run.

An HLS viewer follows the live the way an LL-HLS player does: it asks for the part the playlist's
preload hint names and, at the same time, for the playlist with a blocking reload
(`_HLS_msn`/`_HLS_part`) for that part, then moves on to the next hint. For each transport the
run reports the server's CPU per 100 viewers (above the publisher-only load) and what the viewers
received. One HLS viewer decodes each part as it arrives and reads the capture time drawn into
every frame: the glass-to-glass latency of an LL-HLS client reading at the live edge (a player
adds its hold-back, PART-HOLD-BACK = 1.5 s by default, on top). One WebRTC viewer does the same.

    python loadtests/hls_viewers.py --viewers 100 --duration 15
    python loadtests/hls_viewers.py --smoke          # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing as mp
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import av
import orjson
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testpattern
from _common import RESULTS, ServerProcess, free_port, machine_info, percentiles, spawn, write_results
from webrtc_viewers import viewers_main

WIDTH, HEIGHT, FPS, BITRATE = 1280, 720, 30, 1_500_000
_HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"')
_MAP = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')
_PART = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')


def _position(uri: str) -> tuple[int, int]:
    """(msn, part) of a part URI such as `12/34.5.m4s`."""
    msn, part = uri.rsplit("/", 1)[1].removesuffix(".m4s").split(".")
    return int(msn), int(part)


# -- an LL-HLS client -------------------------------------------------------------------------


class HlsViewer:
    """Follows the live edge part by part; with `measure` it decodes the video of every part."""

    def __init__(self, http: aiohttp.ClientSession, playlist_url: str, measure: bool) -> None:
        self.http = http
        self.playlist_url = playlist_url
        self.parts = 0
        self.bytes = 0
        self.errors = 0
        self.missed_hints = 0  # hinted parts that never came: the segment ended before them
        self.latencies_ms: list[float] = []
        self.decode_errors = 0
        self._decoder: av.CodecContext | None = None
        self._init = b""
        self.measure = measure
        self._decoding = ThreadPoolExecutor(max_workers=1)

    async def _get(self, url: str) -> bytes:
        async with self.http.get(url) as response:
            response.raise_for_status()
            return await response.read()

    async def run(self) -> None:
        base = self.playlist_url.rsplit("/", 1)[0] + "/"
        playlist: str | None = None
        fetched: tuple[int, int] | None = None  # (msn, part) of the newest part taken
        while True:
            try:
                if playlist is None:
                    playlist = (await self._get(self.playlist_url)).decode()
                if not self._init:
                    self._init = await self._get(base + _MAP.search(playlist).group(1))  # type: ignore[union-attr]
                # parts listed after the newest one taken (a hint that was not a part: a new segment)
                for uri in _PART.findall(playlist):
                    position = _position(uri)
                    if fetched is not None and position > fetched:
                        self._took(await self._get(base + uri))
                        fetched = position
                hint = _HINT.search(playlist)
                if hint is None:
                    return  # the live ended
                uri = hint.group(1)
                msn, part = _position(uri)
                reload = f"{self.playlist_url}?_HLS_msn={msn}&_HLS_part={part}"
                data, text = await asyncio.gather(
                    self._get(base + uri), self._get(reload), return_exceptions=True
                )
                if isinstance(text, BaseException):
                    raise text
                if isinstance(data, bytes):
                    self._took(data)
                    fetched = (msn, part)
                elif fetched is None:
                    fetched = (msn, part - 1)
                else:
                    self.missed_hints += 1
                playlist = text.decode()
            except aiohttp.ClientError:
                self.errors += 1
                playlist = None
                await asyncio.sleep(0.2)

    def _took(self, data: bytes) -> None:
        self.parts += 1
        self.bytes += len(data)
        if self.measure:
            # decoded aside, in order, so that a slow decode never delays the next request
            loop = asyncio.get_running_loop()
            loop.run_in_executor(self._decoding, self._decode, data, time.time() * 1000)

    def _decode(self, part: bytes, arrived_ms: float) -> None:
        try:
            with av.open(io.BytesIO(self._init + part)) as container:
                stream = container.streams.video[0]
                if self._decoder is None:
                    self._decoder = av.CodecContext.create("h264", "r")
                    self._decoder.extradata = stream.codec_context.extradata
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    for frame in self._decoder.decode(av.Packet(bytes(packet))):
                        self.latencies_ms.append(arrived_ms - testpattern.capture_time_ms(frame))
        except Exception:  # in the executor: counted, never lost
            self.decode_errors += 1


# -- client processes ------------------------------------------------------------------------


async def _hls_main(conn: Connection, playlist_url: str, count: int, measuring: bool) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        viewers = [HlsViewer(http, playlist_url, measuring and index == 0) for index in range(count)]
        tasks = [asyncio.ensure_future(viewer.run()) for viewer in viewers]
        conn.send(("connected", count, 0))
        await asyncio.to_thread(conn.recv)  # the window starts
        parts_before = [viewer.parts for viewer in viewers]
        for viewer in viewers:
            viewer.latencies_ms.clear()
        await asyncio.to_thread(conn.recv)  # the window ends
        parts = [viewer.parts - before for viewer, before in zip(viewers, parts_before, strict=True)]
        conn.send(
            (
                "report",
                {
                    "received": parts,
                    "latencies_ms": [value for viewer in viewers for value in viewer.latencies_ms],
                    "errors": sum(viewer.errors for viewer in viewers) + sum(t.done() for t in tasks),
                    "missed_hints": sum(viewer.missed_hints for viewer in viewers),
                    "decode_errors": sum(viewer.decode_errors for viewer in viewers),
                },
            )
        )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def viewers_process(conn: Connection, transport: str, url: str, count: int, measuring: bool) -> None:
    main = _hls_main if transport == "hls" else viewers_main
    asyncio.run(main(conn, url, count, measuring))


async def _publisher_main(conn: Connection, whip_url: str, stream_key: str) -> None:
    video = testpattern.PatternVideoTrack(width=WIDTH, height=HEIGHT, fps=FPS, bitrate=BITRATE, codec="h264")
    async with aiohttp.ClientSession() as http:
        publisher = await testpattern.publish(
            http,
            whip_url,
            stream_key,
            video=video,
            audio=testpattern.ToneAudioTrack(),
            rewrite_offer=testpattern.prefer_h264,
        )
        conn.send(("published",))
        await asyncio.to_thread(conn.recv)  # stop
        await publisher.pc.close()


def _counts(report: dict[str, Any]) -> dict[str, Any]:
    """One shape for both transports: a WebRTC viewer process (webrtc_viewers.py) reports video
    frames and ended viewers, an HLS one parts received and errors."""
    if "frames" in report:
        return {**report, "received": report["frames"], "errors": report["ended"]}
    return report


def publisher_process(conn: Connection, whip_url: str, stream_key: str) -> None:
    asyncio.run(_publisher_main(conn, whip_url, stream_key))


# -- one measured audience ---------------------------------------------------------------------


def measure(
    server: ServerProcess, transport: str, url: str, viewers: int, idle_cpu: float, args: argparse.Namespace
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    processes = max(1, min(args.client_processes, viewers))
    shares = [viewers // processes + (1 if i < viewers % processes else 0) for i in range(processes)]
    pipes, children = [], []
    for index, share in enumerate(shares):
        parent_end, child_end = ctx.Pipe()
        child = ctx.Process(
            target=viewers_process, args=(child_end, transport, url, share, index == 0), daemon=True
        )
        child.start()
        pipes.append(parent_end)
        children.append(child)
    answers = [pipe.recv() for pipe in pipes]
    connected = sum(answer[1] for answer in answers)
    time.sleep(args.settle)
    for pipe in pipes:
        pipe.send("start")
    cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
    time.sleep(args.duration)
    cpu_used, wall = server.cpu_seconds() - cpu_before, time.monotonic() - wall_before
    for pipe in pipes:
        pipe.send("stop")
    reports = [_counts(pipe.recv()[1]) for pipe in pipes]
    if transport == "webrtc":
        for pipe in pipes:
            pipe.send("close")  # webrtc_viewers' processes measure windows until told to close
    for child in children:
        child.join(30)
        if child.is_alive():
            child.kill()
    received = [count for report in reports for count in report["received"]]
    latencies = [value for report in reports for value in report["latencies_ms"]]
    cpu = cpu_used / wall
    return {
        "transport": transport,
        "viewers": viewers,
        "connected": connected,
        "refused": sum(answer[2] for answer in answers),
        "errors": sum(report["errors"] for report in reports),
        # HLS: preload hints that named a part the segment ended before (the player moves on)
        "missed_hints": sum(report.get("missed_hints", 0) for report in reports),
        # HLS: parts per viewer in the window; WebRTC: video frames per viewer
        "received_per_viewer": {
            "mean": round(statistics.fmean(received), 1) if received else 0,
            "min": min(received, default=0),
        },
        "glass_to_glass_ms": percentiles(latencies),
        "latency_samples": len(latencies),
        "decode_errors": sum(report["decode_errors"] for report in reports),
        "server_cpu_percent": round(100 * cpu, 1),
        "server_cpu_publisher_only_percent": round(100 * idle_cpu, 1),
        "cpu_percent_per_100_viewers": round(100 * 100 * (cpu - idle_cpu) / max(1, connected), 2),
    }


def start_server(work: Path, max_viewers: int) -> tuple[ServerProcess, dict[str, Any]]:
    port = free_port()
    data_dir = work / "livecommerce"
    env = {
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "LOG_LEVEL": "WARNING",
        "RTC_HOST_ADDRESSES": "127.0.0.1",
        "ICE_SERVERS": "",
        "MAX_VIEWERS_PER_NODE": str(max_viewers + 10),
    }
    server = spawn(
        "livecommerce", ["-m", "livecommerce", "serve", "--demo"], env=env, port=port, log_dir=work
    )
    demo = orjson.loads((data_dir / "demo.json").read_bytes())
    return server, demo


def wait_for_playlist(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200 and b"#EXTINF" in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no HLS playlist at {url}")


def run(args: argparse.Namespace, work: Path, bar: tqdm) -> list[dict[str, Any]]:
    server, demo = start_server(work, args.viewers)
    ctx = mp.get_context("spawn")
    publisher, child_end = ctx.Pipe()
    publishing = ctx.Process(
        target=publisher_process, args=(child_end, demo["whip_url"], demo["stream_key"]), daemon=True
    )
    publishing.start()
    results = []
    try:
        publisher.recv()
        playlist = demo["whep_url"].replace("/api/rooms/", "/hls/").replace("/whep", "/index.m3u8")
        wait_for_playlist(playlist)
        bar.set_postfix_str("publisher only")
        time.sleep(args.settle)
        cpu_before, wall_before = server.cpu_seconds(), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = (server.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        for transport, url in (("webrtc", demo["whep_url"]), ("hls", playlist)):
            bar.set_postfix_str(f"{args.viewers} {transport} viewers")
            results.append(measure(server, transport, url, args.viewers, idle_cpu, args))
            bar.update(1)
    finally:
        publisher.send("stop")
        publishing.join(20)
        if publishing.is_alive():
            publishing.kill()
        server.stop()
    return results


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, latency_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [r["transport"].upper() if r["transport"] == "hls" else "WebRTC" for r in results]
    cpu_ax.bar(names, [r["cpu_percent_per_100_viewers"] for r in results], color=["#1565c0", "#2e7d32"])
    cpu_ax.set(ylabel="server CPU per 100 viewers (% of one core)", title="Server CPU per 100 viewers")
    for index, key in enumerate(("p50", "p95")):
        latency_ax.bar(
            [i + index * 0.38 for i in range(len(results))],
            [r["glass_to_glass_ms"][key] or 0 for r in results],
            width=0.38,
            label=key,
        )
    latency_ax.set_xticks([i + 0.19 for i in range(len(results))], names)
    latency_ax.set(ylabel="glass-to-glass (ms)", title="Glass-to-glass at one viewer")
    latency_ax.legend()
    for ax in (cpu_ax, latency_ax):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=100, help="viewers of each transport")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per transport")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before measuring")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of publisher-only CPU")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="two viewers of each for a few seconds")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.viewers, args.duration, args.settle, args.idle, args.client_processes = 2, 4.0, 3.0, 1.0, 1
    with (
        tempfile.TemporaryDirectory(prefix="hls-viewers-") as tmp,
        tqdm(total=2, desc="hls and webrtc viewers", unit="transport") as bar,
    ):
        results = run(args, Path(tmp), bar)
    by = {r["transport"]: r for r in results}
    summary = {
        "viewers": args.viewers,
        "webrtc_cpu_percent_per_100_viewers": by["webrtc"]["cpu_percent_per_100_viewers"],
        "hls_cpu_percent_per_100_viewers": by["hls"]["cpu_percent_per_100_viewers"],
        "hls_glass_to_glass_ms": by["hls"]["glass_to_glass_ms"],
        "webrtc_glass_to_glass_ms": by["webrtc"]["glass_to_glass_ms"],
    }
    data = {
        "machine": machine_info(),
        "scenario": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "bitrate": BITRATE, **vars(args)},
        "results": results,
        "summary": summary,
    }
    data["scenario"]["results_dir"] = str(args.results_dir.name)
    path = write_results("hls_viewers-smoke" if args.smoke else "hls_viewers", data, args.results_dir)
    plot(results, path.with_suffix(".png"))
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    print(f"results: {path}")


if __name__ == "__main__":
    main()
