"""Prize draws over HTTP and as room WebSocket commands: thin shells around `DrawService`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from livecommerce.commerce.prizes import Shipping
from livecommerce.draws.service import DrawService, StartDraw
from livecommerce.http import Id, int_param, json_response, parse, principal, read_json
from livecommerce.realtime import event_types
from livecommerce.realtime.hub import CommandContext, Hub


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


class DrawsApi:
    """The draws' HTTP handlers and room commands, bound to the service."""

    def __init__(self, service: DrawService) -> None:
        self.service = service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/rooms/{room_id}/draws", self.start_draw),
            web.get("/api/rooms/{room_id}/draws", self.room_draws),
            web.get("/api/draws/{draw_id}", self.draw_record),
            web.post("/api/draws/{draw_id}/close", self.close_draw),
            web.post("/api/draws/{draw_id}/claim", self.claim_prize),
        ]

    def register(self, hub: Hub) -> None:
        """The room commands, the running draw in the join snapshot, keyword entries from chat, and
        the live's end closing the room's keyword draw."""
        hub.command("draw.start", self.start_command)
        hub.command("draw.enter", self.enter_command)
        hub.command("draw.claim", self.claim_command)
        hub.snapshot_provider("draw", self.service.snapshot)
        hub.on_chat(self.service.on_chat)
        hub.on_publish(event_types.STREAM_ENDED, self.service.close_with_live)

    async def start_draw(self, request: web.Request) -> web.Response:
        room_id = int_param(request, "room_id")
        who = principal(request)
        spec = await read_json(request, StartDraw)
        return json_response(await self.service.start(who, room_id, spec), status=201)

    async def room_draws(self, request: web.Request) -> web.Response:
        room_id = int_param(request, "room_id")
        return json_response({"draws": await self.service.history(room_id)})

    async def draw_record(self, request: web.Request) -> web.Response:
        return json_response(await self.service.record(int_param(request, "draw_id")))

    async def close_draw(self, request: web.Request) -> web.Response:
        draw_id = int_param(request, "draw_id")
        who = principal(request)
        return json_response(await self.service.close(draw_id, by=who))

    async def claim_prize(self, request: web.Request) -> web.Response:
        draw_id = int_param(request, "draw_id")
        who = principal(request)
        body = await read_json(request, ClaimBody)
        return json_response(await self.service.claim(who, draw_id, body.shipping))

    async def start_command(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        return await self.service.start(ctx.principal, ctx.room_id, parse(StartDraw, data))

    async def enter_command(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        body = parse(EnterDraw, data)
        return await self.service.enter(ctx.principal, ctx.room_id, body.draw_id)

    async def claim_command(self, ctx: CommandContext, data: dict[str, Any]) -> dict[str, Any]:
        body = parse(ClaimPrize, data)
        return await self.service.claim(ctx.principal, body.draw_id, body.shipping)
