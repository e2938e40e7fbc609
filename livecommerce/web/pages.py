"""The pages people use (studio, watch, console, and the buyer's orders; the replay's is in
replay.py), the index, and their static files."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce import accounts
from livecommerce.config import Settings
from livecommerce.errors import AppError
from livecommerce.http import int_param
from livecommerce.resources import web_root

_SLOT = re.compile(r"\{\{(\w+)\}\}")
_INCLUDE = re.compile(r"<!-- include ([\w-]+) -->")


def _page(name: str) -> str:
    """A page's HTML with each `<!-- include NAME -->` replaced by `web/fragments/NAME.html`, the
    markup several pages share."""
    text = (web_root() / f"{name}.html").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda match: _fragment(match.group(1)), text)


def _fragment(name: str) -> str:
    return (web_root() / "fragments" / f"{name}.html").read_text(encoding="utf-8").rstrip("\n")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


def _fill(template: str, values: dict[str, str]) -> str:
    """Put escaped values into the `{{name}}` slots of a page template, in one pass."""
    return _SLOT.sub(lambda match: html.escape(values[match.group(1)], quote=True), template)


def html_page(name: str, values: dict[str, str]) -> web.Response:
    """A page template with its `{{name}}` slots filled."""
    return _html(_fill(_page(name), values))


async def _room_page(
    request: web.Request, name: str, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> web.Response:
    try:
        room_id = int_param(request, "room_id")
    except AppError:
        raise web.HTTPNotFound() from None
    async with sessions() as session:
        room = await accounts.find_room(session, room_id)
    if room is None:
        return _html(_fill(_page("missing"), {"room_id": str(room_id)}), status=404)
    values = {
        "room_id": str(room.id),
        "room_title": room.title,
        "payments": "test" if settings.payments_test_mode else "stripe",
    }
    return _html(_fill(_page(name), values))


async def _index(request: web.Request, sessions: async_sessionmaker[AsyncSession]) -> web.Response:
    """Every room with links to its three pages."""
    async with sessions() as session:
        rooms = await accounts.all_rooms(session)
    items = []
    for room in rooms:
        links = " ".join(
            f'<a href="/{page}/{room.id}">{page.title()}</a>' for page in ("watch", "studio", "console")
        )
        items.append(
            f'<li><span class="room-name">{html.escape(room.title)}</span>'
            f' <span class="muted">#{room.id}</span> {links}</li>'
        )
    listing = "\n".join(items) or '<li class="muted">No rooms yet. Start the server with --demo.</li>'
    return _html(_page("index").replace("<!--rooms-->", listing))


def install(app: web.Application, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Add the page routes and serve `web/` under `/static/`."""

    def room_page(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def page(request: web.Request) -> web.Response:
            return await _room_page(request, name, sessions, settings)

        return page

    async def index(request: web.Request) -> web.Response:
        return await _index(request, sessions)

    async def orders(request: web.Request) -> web.Response:
        """The buyer's orders across rooms: the page reads them with the viewer's own token."""
        return _html(_page("orders"))

    for name in ("studio", "watch", "console"):
        app.router.add_get(f"/{name}/{{room_id}}", room_page(name))
    app.router.add_get("/orders", orders)
    app.router.add_get("/", index)
    app.router.add_static("/static/", web_root(), append_version=False)
