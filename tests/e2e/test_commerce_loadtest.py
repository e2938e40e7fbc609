"""A small run of the flash-sale load test: both order paths, exact accounting, JSON and plot."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT


def test_flash_sale_load_test_smoke_run(postgres, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "loadtests/flash_sale.py",
            "--buyers",
            "40",
            "--stock",
            "15",
            "--taps",
            "2",
            "--database-url",
            postgres.admin_dsn,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [json_path] = tmp_path.glob("flash_sale-*.json")
    assert json_path.with_suffix(".png").stat().st_size > 0
    results = json.loads(json_path.read_text())
    assert [run["mode"] for run in results["runs"]] == ["batched", "row_lock"]
    for run in results["runs"]:
        assert run["taps"] == 80
        assert run["outcomes"]["reserved"] == 15
        books = run["accounting"]
        assert books["oversell"] == 0 and books["balanced"] and books["acknowledged_orders_missing"] == 0
        assert books["answers_recorded"] == 80
    assert results["speedup"] > 0
