"""Shared parts of the load tests: starting servers, sampling their CPU and memory, percentiles,
machine facts and writing results next to a plot."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from livecommerce.db.embedded import free_port as free_port  # the one the tests use too

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtests" / "results"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles, rounded to 0.1; None for an empty list."""
    if not values:
        return {f"p{p:g}": None for p in points}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {f"p{p:g}": round(ordered[min(last, round(p / 100 * last))], 1) for p in points}


@dataclass
class ServerProcess:
    """A server under test, run as a child process on loopback."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def rss_bytes(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def spawn(
    name: str, args: list[str], *, env: dict[str, str], port: int, log_dir: Path, timeout: float = 90
) -> ServerProcess:
    """Start a server process and wait until GET /healthz answers 200."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    server = ServerProcess(name, proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not become healthy in {timeout}s:\n{log_path.read_text()[-3000:]}")


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def write_results(name: str, data: dict[str, Any], results_dir: Path = RESULTS) -> Path:
    """Write `<name>-<UTC timestamp>.json` (and keep `<name>-latest.json` beside it)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{name}-{stamp}.json"
    text = json.dumps(data, indent=2)
    path.write_text(text)
    (results_dir / f"{name}-latest.json").write_text(text)
    return path
