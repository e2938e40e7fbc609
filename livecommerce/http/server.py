"""The HTTP server around the app: a request that fails before it reaches the app (a URL or
header past the parser's limits, a malformed request line) is answered in the app's JSON error
shape and with the app's `Server` name, like every other error."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from livecommerce.http import SERVER_NAME, error_code_for_status


class _JsonErrorRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs, and refuses once bytes were sent
        if status >= 500:
            message = "internal error"
        elif not message:
            message = HTTPStatus(status).phrase
        body = {"error": {"code": error_code_for_status(status), "message": message}}
        response = web.Response(
            body=orjson.dumps(body),
            status=status,
            content_type="application/json",
            headers={"Server": SERVER_NAME},
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """`aiohttp.web.AppRunner` whose connections answer parse errors as JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server, handing out the handler above
        return server
