"""The `livecommerce` command as a user runs it: serve on the embedded database, demo data, admin commands."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from helpers import ROOT, spawn_server

EMBEDDED = {"DATABASE_URL": "", "LOG_LEVEL": "WARNING"}
COUNTED = ("merchants", "users", "rooms", "products", "skus", "stream_keys")


def embedded_port(data_dir: Path) -> int:
    """The embedded server's port, from PostgreSQL's own postmaster.pid (fourth line)."""
    return int((data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[3])


async def row_counts(data_dir: Path) -> dict[str, int]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{embedded_port(data_dir)}/livecommerce")
    try:
        return {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in COUNTED}
    finally:
        await conn.close()


def postgres_running(data_dir: Path) -> bool:
    return (data_dir / "postgres" / "postmaster.pid").exists()


async def test_serve_answers_and_stops_cleanly_on_sigterm(tmp_path):
    server = spawn_server(EMBEDDED, data_dir=tmp_path)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/readyz") as response:
            assert response.status == 200
        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 15
        assert not postgres_running(tmp_path), "the embedded PostgreSQL stops with the server"
    finally:
        server.stop(signal.SIGKILL)


async def test_sigint_also_stops_cleanly(tmp_path):
    server = spawn_server(EMBEDDED, data_dir=tmp_path)
    assert server.stop(signal.SIGINT, timeout=30) == 0


async def test_second_serve_on_same_data_dir_is_refused(tmp_path):
    server = spawn_server(EMBEDDED, data_dir=tmp_path)
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "livecommerce", "serve", "--port", "0"],
            env={**os.environ, **EMBEDDED, "DATA_DIR": str(tmp_path)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert (
            f"data directory {tmp_path} is in use by another `livecommerce serve` (pid {server.proc.pid})"
            in (result.stderr)
        )
    finally:
        assert server.stop() == 0


async def test_demo_twice_creates_nothing_twice(tmp_path):
    server = spawn_server(EMBEDDED, "--demo", data_dir=tmp_path)
    first = json.loads((tmp_path / "demo.json").read_text())
    counts = await row_counts(tmp_path)
    assert server.stop() == 0
    for key in (
        "room_id",
        "stream_key",
        "whip_url",
        "whep_url",
        "ws_url",
        "studio_url",
        "watch_url",
        "console_url",
    ):
        assert first[key]
    assert {"anchor", "operator", "moderator"} <= set(first["logins"])
    assert all(sku["id"] for product in first["products"] for sku in product["skus"])

    server = spawn_server(
        EMBEDDED, "--demo", data_dir=tmp_path, port=int(first["whip_url"].split(":")[2].split("/")[0])
    )
    try:
        second = json.loads((tmp_path / "demo.json").read_text())
        assert await row_counts(tmp_path) == counts
        assert second == first
        login = second["logins"]["operator"]
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{server.url}/api/auth/login", json={"login": login["login"], "password": login["password"]}
            ) as response,
        ):
            assert response.status == 200, "demo logins keep working across restarts"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("with_database_url", [True, False])
def test_admin_commands_create_what_an_operator_needs(tmp_path, postgres, with_database_url):
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "LIVECOMMERCE_PASSWORD": "s3cret-pass",
    }
    if with_database_url:
        name = f"cli_{os.getpid()}_{int(time.time() * 1000) % 100000}"
        asyncio.run(_create_database(postgres.admin_dsn, name))
        env["DATABASE_URL"] = postgres.dsn(name)
    else:
        env["DATABASE_URL"] = ""

    def run(*args: str) -> dict:
        result = subprocess.run(
            [sys.executable, "-m", "livecommerce", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    merchant = run("create-merchant", "--name", "Tea Co-op", "--slug", "tea")
    room = run("create-room", "--merchant-id", str(merchant["merchant_id"]), "--title", "Harvest")
    user = run(
        "create-user",
        "--login",
        "op@tea",
        "--role",
        "operator",
        "--display-name",
        "Op",
        "--merchant-id",
        str(merchant["merchant_id"]),
    )
    key = run("create-stream-key", "--room-id", str(room["room_id"]))
    assert user["user_id"] and key["stream_key"].startswith("sk_")

    again = subprocess.run(
        [sys.executable, "-m", "livecommerce", "create-merchant", "--name", "x", "--slug", "tea"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1
    assert again.stderr.strip() == "error: already_exists: a merchant with slug 'tea' exists"


async def _create_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
