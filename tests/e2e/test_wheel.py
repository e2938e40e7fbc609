"""A wheel built from the repository carries the pages (web/) and the migrations (migrations/):
installed into a fresh virtual environment outside the checkout, `serve --demo` migrates an
empty database and serves the pages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import aiohttp
from helpers import ROOT, spawn_server


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("livecommerce-*.whl")
    return wheel


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new environment with only the wheel installed from files; its dependencies are the test
    environment's, reached through a .pth line (so the test needs no package index)."""
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


async def test_wheel_installed_elsewhere_serves_pages_and_migrates(tmp_path):
    wheel = await asyncio.to_thread(build_wheel, tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "livecommerce/webroot/watch.html" in names
    assert "livecommerce/webroot/js/watch.js" in names
    assert "livecommerce/migrations/env.py" in names
    assert any(name.startswith("livecommerce/migrations/versions/0001") for name in names)

    python = await asyncio.to_thread(fresh_venv, tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locate = await asyncio.to_thread(
        subprocess.run,
        [
            str(python),
            "-c",
            "import livecommerce.resources as r; print(r.web_root()); print(r.migrations_folder())",
        ],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    )
    located = locate.stdout.split()
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in located), located

    server = spawn_server(
        {"DATABASE_URL": "", "LOG_LEVEL": "WARNING"},
        "--demo",
        data_dir=tmp_path / "data",
        python=str(python),
        cwd=elsewhere,
        timeout=120,
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/readyz") as response:
                assert response.status == 200
            async with http.get(f"{server.url}/") as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            async with http.get(f"{server.url}/static/js/watch.js") as response:
                assert response.status == 200
                assert "javascript" in response.headers["Content-Type"]
    finally:
        assert server.stop() == 0
