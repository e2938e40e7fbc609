"""Prize draws over HTTP and as room WebSocket commands: thin shells around `DrawService`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from livecommerce.appkeys import SESSION_FACTORY, SETTINGS
from livecommerce.commerce.prizes import Shipping
from livecommerce.draws.service import DrawService, StartDraw
from livecommerce.http import Id, int_param, json_response, parse, principal, read_json
from livecommerce.realtime.hub import HUB, CommandContext

DRAWS = web.AppKey("draws", DrawService)
routes = web.RouteTableDef()


class EnterDraw(BaseModel):
    draw_id: Id | None = None
    model_config = {"extra": "forbid"}


class ClaimPrize(BaseModel):
    draw_id: Id
    shipping: Shipping
    model_config = {"extra": "forbid"}


class ClaimBody(BaseModel):
    shipping: Shipping
    model_config = {"extra": "forbid"}


@routes.post("/api/rooms/{room_id}/draws")
async def start_draw(request: web.Request) -> web.Response:
    room_id = int_param(request, "room_id")
    who = principal(request)
    spec = await read_json(request, StartDraw)
    return json_response(await request.app[DRAWS].start(who, room_id, spec), status=201)


@routes.get("/api/rooms/{room_id}/draws")
async def room_draws(request: web.Request) -> web.Response:
    room_id = int_param(request, "room_id")
    return json_response({"draws": await request.app[DRAWS].history(room_id)})


@routes.get("/api/draws/{draw_id}")
async def draw_record(request: web.Request) -> web.Response:
    return json_response(await request.app[DRAWS].record(int_param(request, "draw_id")))


@routes.post("/api/draws/{draw_id}/close")
async def close_draw(request: web.Request) -> web.Response:
    draw_id = int_param(request, "draw_id")
    who = principal(request)
    return json_response(await request.app[DRAWS].close(draw_id, by=who))


@routes.post("/api/draws/{draw_id}/claim")
async def claim_prize(request: web.Request) -> web.Response:
    draw_id = int_param(request, "draw_id")
    who = principal(request)
    body = await read_json(request, ClaimBody)
    return json_response(await request.app[DRAWS].claim(who, draw_id, body.shipping))


async def _start_command(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
    return await ctx.app[DRAWS].start(ctx.principal, ctx.room_id, parse(StartDraw, data))


async def _enter_command(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
    body = parse(EnterDraw, data)
    return await ctx.app[DRAWS].enter(ctx.principal, ctx.room_id, body.draw_id)


async def _claim_command(ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
    body = parse(ClaimPrize, data)
    return await ctx.app[DRAWS].claim(ctx.principal, body.draw_id, body.shipping)


async def _draws(app: web.Application) -> AsyncIterator[None]:
    """Create the service once the database and hub exist, hook it into rooms, run the closer."""
    hub = app[HUB]
    service = DrawService(app[SESSION_FACTORY], hub, app[SETTINGS].draw_min_watch_seconds)
    app[DRAWS] = service
    hub.command("draw.start", _start_command)
    hub.command("draw.enter", _enter_command)
    hub.command("draw.claim", _claim_command)
    hub.snapshot_provider("draw", service.snapshot)
    hub.on_chat(service.on_chat)
    closer = asyncio.create_task(service.run_closer(), name="draw-closer")
    yield
    closer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closer


def setup(app: web.Application) -> None:
    app.add_routes(routes)
    app.cleanup_ctx.append(_draws)
