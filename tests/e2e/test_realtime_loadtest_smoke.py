"""A seconds-long run of the room fan-out load test: both servers, every figure present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ws_viewers_smoke_run_measures_both_servers(tmp_path):
    completed = subprocess.run(
        [sys.executable, "loadtests/ws_viewers.py", "--smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = json.loads((tmp_path / "ws_viewers-latest.json").read_text())
    assert {run["target"] for run in data["runs"]} == {"livecommerce", "baseline"}
    for run in data["runs"]:
        assert run["connected"] == run["viewers"] == 10
        assert run["published"]["commerce"] > 0 and run["published"]["chat"] > 0
        assert run["lost"]["commerce"] == 0
        assert run["delivered"]["commerce"] == run["published"]["commerce"] * run["viewers"]
        assert run["latency_ms"]["all"]["p99"] is not None
    assert data["machine"]["cores"] >= 1
    assert list(tmp_path.glob("ws_viewers-*.png"))
