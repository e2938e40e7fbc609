"""HTTP for recordings: the files a player reads (`/recordings/{stream_session_id}/...`), and for
staff the list of a room's recordings, deleting one, and marking clips."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from livecommerce import accounts
from livecommerce.auth import authorize
from livecommerce.db.models import Recording
from livecommerce.errors import AppError
from livecommerce.http import file_id, int_param, json_response, principal, read_json
from livecommerce.media import llhls
from livecommerce.media.hls import CORS, IMMUTABLE, PLAYLIST_TYPE, SEGMENT_TYPE
from livecommerce.media.recording import INIT, PLAYLIST, Recordings


class ClipBody(BaseModel):
    # seconds into the recording; left out during the live: this moment
    offset_seconds: float | None = Field(None, ge=0, le=7 * 24 * 3600)
    title: str = Field("", max_length=200)


class RecordingsApi:
    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/recordings/{session_id}/{name}", self.file),
            web.get("/api/rooms/{room_id}/recordings", self.for_room),
            web.delete("/api/recordings/{session_id}", self.delete),
            web.post("/api/recordings/{session_id}/clips", self.add_clip),
        ]

    async def file(self, request: web.Request) -> web.Response:
        """A recording's VOD playlist, init segment or segment, as a CDN may keep them."""
        session_id = file_id(request, "session_id")
        name = request.match_info["name"]
        parsed = llhls.parse_name(name)
        if name not in (PLAYLIST, INIT) and (parsed is None or parsed[1] is not None):
            raise AppError("not_found", "no such recording file")
        data = await self.recordings.read(session_id, name)
        if data is None:
            raise AppError("not_found", "no such recording (or it is not finished)")
        if name == PLAYLIST:
            headers = {**CORS, "Cache-Control": "public, max-age=60"}
            return web.Response(body=data, content_type=PLAYLIST_TYPE, headers=headers)
        return web.Response(
            body=data, content_type=SEGMENT_TYPE, headers={**CORS, "Cache-Control": IMMUTABLE}
        )

    async def for_room(self, request: web.Request) -> web.Response:
        room_id = int_param(request, "room_id")
        who = principal(request)
        async with self.recordings.sessions() as session:
            room = await accounts.find_room(session, room_id)
        if room is None:
            raise AppError("not_found", "no such room")
        authorize(who, "recording.manage", room.merchant_id)
        return json_response({"recordings": await self.recordings.for_room(room_id)})

    async def delete(self, request: web.Request) -> web.Response:
        recording = await self._managed(request)
        await self.recordings.delete(recording.stream_session_id, principal(request))
        return web.Response(status=204)

    async def add_clip(self, request: web.Request) -> web.Response:
        recording = await self._managed(request)
        body = await read_json(request, ClipBody)
        clip = await self.recordings.add_clip(recording, body.offset_seconds, body.title, principal(request))
        return json_response(clip, status=201)

    async def _managed(self, request: web.Request) -> Recording:
        session_id = int_param(request, "session_id")
        who = principal(request)
        found = await self.recordings.find(session_id)
        if found is None:
            raise AppError("not_found", "no such recording")
        recording, merchant_id = found
        authorize(who, "recording.manage", merchant_id)
        return recording
