"""The `livecommerce` command: serve, migrate, and the admin subcommands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from livecommerce.config import ConfigError, Settings, load_settings
from livecommerce.serving import LOG_FORMAT, database, serve, supervise, worker_count

log = logging.getLogger("livecommerce")


class DataDirInUse(Exception):
    pass


@contextlib.contextmanager
def data_dir_lock(data_dir: Path):
    """Hold an exclusive lock on the data directory for the life of `serve`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "serve.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise DataDirInUse(
            f"data directory {data_dir} is in use by another `livecommerce serve` (pid {owner})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        handle.close()


async def _with_db(settings: Settings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run one unit of work against the configured (or embedded) database, after migrating."""
    from livecommerce.db.engine import Database
    from livecommerce.db.migrate import upgrade_async

    async with database(settings):
        await upgrade_async(settings.database_url)
        db = Database.create(settings.database_url, pool_size=2)
        try:
            async with db.session_factory.begin() as session:
                return await action(session)
        finally:
            await db.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecommerce", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serving = sub.add_parser("serve", help="run the server")
    serving.add_argument("--host", help="address to listen on (HOST, default 127.0.0.1)")
    serving.add_argument("--port", type=int, help="port to listen on (PORT, default 8080)")
    serving.add_argument(
        "--data-dir", type=Path, help="embedded database and secrets (DATA_DIR, default ./data)"
    )
    serving.add_argument(
        "--demo", action="store_true", help="create demo data and write <data-dir>/demo.json"
    )
    serving.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        help="server processes sharing the port, each a node (a number, or auto: one per core; default 1)",
    )

    migrate = sub.add_parser("migrate", help="apply database migrations (DATABASE_URL or embedded)")
    migrate.add_argument("--data-dir", type=Path)
    migrate.add_argument("--revision", default="head")

    merchant = sub.add_parser("create-merchant", help="create a merchant")
    merchant.add_argument("--name", required=True)
    merchant.add_argument("--slug", required=True)
    merchant.add_argument("--currency", default="USD")
    merchant.add_argument("--data-dir", type=Path)

    user = sub.add_parser(
        "create-user", help="create an account (password from LIVECOMMERCE_PASSWORD or stdin)"
    )
    user.add_argument("--login", required=True)
    user.add_argument("--role", required=True, choices=["viewer", "anchor", "operator", "moderator", "admin"])
    user.add_argument("--display-name", required=True)
    user.add_argument("--merchant-id", type=int)
    user.add_argument("--data-dir", type=Path)

    room = sub.add_parser("create-room", help="create a room for a merchant")
    room.add_argument("--merchant-id", type=int, required=True)
    room.add_argument("--title", required=True)
    room.add_argument("--slug")
    room.add_argument("--data-dir", type=Path)

    key = sub.add_parser("create-stream-key", help="create a stream key for a room (printed once)")
    key.add_argument("--room-id", type=int, required=True)
    key.add_argument("--label", default="")
    key.add_argument("--data-dir", type=Path)
    verify = sub.add_parser(
        "verify-draw", help="recompute a closed prize draw's winners from its published data"
    )
    verify.add_argument("draw_id", type=int)
    verify.add_argument(
        "--url", help="read the draw from this server's API (base URL) instead of the database"
    )
    verify.add_argument("--data-dir", type=Path)
    return parser


async def _fetch_draw(base_url: str, draw_id: int) -> dict[str, Any]:
    """A draw's published record from a server's `GET /api/draws/{id}`."""
    import aiohttp

    from livecommerce.errors import HTTP_STATUS, AppError

    url = f"{base_url.rstrip('/')}/api/draws/{draw_id}"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, ValueError) as exc:
        raise AppError("unavailable", f"cannot read {url}: {exc}") from None
    if response.status != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code") if error.get("code") in HTTP_STATUS else "unavailable"
        raise AppError(code, f"{url} answered {response.status}: {error.get('message', '')}")
    return body


def _verify_draw(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute a draw from its published data (docs/draws.md); 0 when it checks out, else 1."""
    from livecommerce.draws.verification import verify

    if args.url:
        record = asyncio.run(_fetch_draw(args.url, args.draw_id))
    else:
        from livecommerce.draws.service import draw_record

        with data_dir_lock(settings.data_dir) if not settings.database_url else contextlib.nullcontext():
            record = asyncio.run(_with_db(settings, lambda session: draw_record(session, args.draw_id)))
    result = verify(record)
    if result.ok:
        winners = ", ".join(str(winner["user_id"]) for winner in record["winners"]) or "none"
        print(
            f"draw {args.draw_id} verifies: seed matches its commitment, "
            f"{record['entrant_count']} entrants hash to {record['entrants_hash']}, winners {winners}"
        )
        return 0
    print(f"draw {args.draw_id} does NOT verify:", file=sys.stderr)
    for mismatch in result.mismatches:
        print(f"  {mismatch}", file=sys.stderr)
    return 1


def _admin_action(args: argparse.Namespace) -> Callable[[Any], Awaitable[dict[str, Any]]]:
    from livecommerce import accounts
    from livecommerce.db.models import Role

    async def run(session: Any) -> dict[str, Any]:
        if args.command == "create-merchant":
            row = await accounts.create_merchant(
                session, name=args.name, slug=args.slug, currency=args.currency
            )
            return {"merchant_id": row.id}
        if args.command == "create-user":
            password = os.environ.get("LIVECOMMERCE_PASSWORD") or sys.stdin.readline().rstrip("\n")
            row = await accounts.create_user(
                session,
                login=args.login,
                password=password,
                role=Role(args.role),
                display_name=args.display_name,
                merchant_id=args.merchant_id,
            )
            return {"user_id": row.id}
        if args.command == "create-room":
            row = await accounts.create_room(
                session, merchant_id=args.merchant_id, title=args.title, slug=args.slug
            )
            return {"room_id": row.id, "slug": row.slug}
        row, plaintext = await accounts.create_stream_key(session, room_id=args.room_id, label=args.label)
        return {"stream_key_id": row.id, "stream_key": plaintext}

    return run


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: v for k in ("host", "port", "data_dir") if (v := getattr(args, k, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    from livecommerce.errors import AppError

    try:
        if args.command == "serve":
            with data_dir_lock(settings.data_dir):
                if args.workers > 1:
                    asyncio.run(supervise(settings, args.workers, args.demo))
                else:
                    asyncio.run(serve(settings, args.demo))
            return 0
        if args.command == "verify-draw":
            return _verify_draw(args, settings)
        if args.command == "migrate":
            from livecommerce.db.migrate import upgrade_async

            async def migrate() -> None:
                async with database(settings):
                    await upgrade_async(settings.database_url, args.revision)

            with data_dir_lock(settings.data_dir):
                asyncio.run(migrate())
            print("database is at", args.revision)
            return 0
        with data_dir_lock(settings.data_dir) if not settings.database_url else contextlib.nullcontext():
            result = asyncio.run(_with_db(settings, _admin_action(args)))
        print(json.dumps(result))
        return 0
    except DataDirInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except AppError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
