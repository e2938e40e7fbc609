"""A smoke run of the WebRTC viewers load test: both servers, a few seconds, JSON and plot written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.media, pytest.mark.timeout(300)]


def run_smoke(results: Path, *args: str) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "loadtests" / "webrtc_viewers.py"),
            "--smoke",
            *args,
            "--results-dir",
            str(results),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_webrtc_viewers_load_test_smoke_run(tmp_path):
    run_smoke(tmp_path)
    data = json.loads((tmp_path / "webrtc_viewers-smoke-latest.json").read_text())
    assert list(tmp_path.glob("webrtc_viewers-smoke-*.png"))
    by_target = {result["target"]: result for result in data["results"]}
    assert set(by_target) == {"livecommerce", "baseline"}
    for result in by_target.values():
        assert result["connected"] == result["viewers"]
        assert result["frames_sent"] > 0
        assert result["frames_delivered_per_viewer"]["min"] > 0
        assert result["latency_samples"] > 0
        assert result["decode_errors"] == 0
    assert data["machine"]["cores"] >= 1


def test_webrtc_viewers_over_nodes_smoke_run(tmp_path):
    run_smoke(tmp_path, "--nodes", "2")
    data = json.loads((tmp_path / "webrtc_cluster-smoke-latest.json").read_text())
    assert list(tmp_path.glob("webrtc_cluster-smoke-*.png"))
    origin, edge = data["nodes"]
    assert (origin["role"], edge["role"]) == ("origin", "edge")
    for node in data["nodes"]:
        assert node["viewers"] == 2
        assert node["delivery_ratio"] > 0
        assert node["glass_to_glass_ms"]["p50"] is not None
    (round_,) = data["rounds"]  # the edge's viewer absent, on the origin, through the edge
    assert round_["frames_sent"] and all(round_["frames_sent"])
    assert len(round_["hop_ms"]) == 1
    assert data["summary"]["latency_per_hop_ms"] is not None
