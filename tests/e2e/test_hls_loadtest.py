"""A smoke run of the HLS viewers load test: one node, WebRTC then LL-HLS viewers of one H.264
live, a few seconds each; JSON and plot written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.media, pytest.mark.timeout(300)]


def test_hls_viewers_load_test_smoke_run(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "loadtests" / "hls_viewers.py"),
            "--smoke",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = json.loads((tmp_path / "hls_viewers-smoke-latest.json").read_text())
    assert list(tmp_path.glob("hls_viewers-smoke-*.png"))
    by_transport = {result["transport"]: result for result in data["results"]}
    assert set(by_transport) == {"webrtc", "hls"}
    for result in by_transport.values():
        assert result["connected"] == result["viewers"] == 2
        assert result["received_per_viewer"]["min"] > 0
        assert result["latency_samples"] > 0
        assert result["decode_errors"] == 0
    assert by_transport["hls"]["errors"] == 0
    assert data["summary"]["hls_glass_to_glass_ms"]["p50"] > 0
