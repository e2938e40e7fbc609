"""Shared HTTP plumbing: one JSON error shape, request parsing, the caller's identity, headers."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from livecommerce.appkeys import SETTINGS
from livecommerce.db.engine import database_unreachable
from livecommerce.errors import AppError
from livecommerce.http.identity import optional_principal, principal
from livecommerce.http.inputs import Id, file_id, int_param, optional_id, query_int, refuse_nul

__all__ = [
    "Id",
    "error_middleware",
    "error_response",
    "file_id",
    "int_param",
    "json_response",
    "optional_id",
    "optional_principal",
    "parse",
    "principal",
    "query_int",
    "read_json",
    "security_headers",
]

log = logging.getLogger(__name__)
DATABASE_UNAVAILABLE = AppError("unavailable", "the database cannot be reached; try again shortly")
Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_code_for_status(status: int) -> str:
    """The error code for an HTTP error that aiohttp raised rather than our code."""
    return _HTTP_CODES.get(status, "bad_request" if status < 500 else "internal")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(error: AppError, headers: dict[str, str] | None = None) -> web.Response:
    retry_after = error.details.get("retry_after")
    if error.status == 429 and isinstance(retry_after, int | float):
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))), **(headers or {})}
    return json_response({"error": error.to_dict()}, status=error.status, headers=headers)


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse(model: type[Model], data: Any) -> Model:
    """Validate data against a pydantic model, raising a typed `invalid` error on failure."""
    refuse_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise AppError("invalid", validation_message(exc)) from None


async def read_json(request: web.Request, model: type[Model]) -> Model:
    if request.content_type != "application/json":
        raise AppError("unsupported_media_type", "send the body as application/json")
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise AppError("invalid_json", "the body is not valid JSON") from None
    return parse(model, data)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as `{"error": {"code", "message"}}`; tracebacks stay in the log."""
    try:
        return await handler(request)
    except AppError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = error_code_for_status(exc.status)
        if exc.status == 413:
            message = f"the request body is larger than {request.app[SETTINGS].max_request_bytes} bytes"
        else:
            message = exc.reason
        body = orjson.dumps({"error": {"code": code, "message": message}})
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "location")}
        return web.Response(body=body, status=exc.status, content_type="application/json", headers=headers)
    except Exception as exc:
        if database_unreachable(exc):
            log.warning("%s %s: the database is unreachable (%s)", request.method, request.path, exc)
            return error_response(DATABASE_UNAVAILABLE)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": "internal error"}}, status=500)


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' https://js.stripe.com",
        "frame-src https://js.stripe.com https://hooks.stripe.com",
        "connect-src 'self' ws: wss: https://api.stripe.com",
        "img-src 'self' data: https:",
        "media-src 'self' blob:",
        "style-src 'self' 'unsafe-inline'",
        "frame-ancestors 'none'",
    ]
)


SERVER_NAME = "livecommerce"


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_NAME  # not aiohttp's name and version
    if request.path.startswith("/api/"):
        # answers carry tokens, stream keys, orders and addresses: never kept by a cache
        headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
