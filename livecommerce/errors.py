"""Errors with a stable code, a human message, and one HTTP status per code (one table)."""

from __future__ import annotations

from typing import Any

# code -> HTTP status. WebSocket errors carry the same codes; close codes live in realtime.protocol.
HTTP_STATUS: dict[str, int] = {
    "bad_request": 400,
    "invalid": 400,
    "invalid_json": 400,
    "invalid_sdp": 400,
    "unknown_command": 400,
    "blocked_content": 400,
    "invalid_name": 400,
    "invalid_phone": 400,
    "invalid_email": 400,
    "invalid_address": 400,
    "invalid_country": 400,
    "weak_password": 400,
    "unauthorized": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "invalid_credentials": 401,
    "invalid_stream_key": 401,
    "invalid_signature": 400,
    "forbidden": 403,
    "not_eligible": 403,
    "banned": 403,
    "muted": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "conflict": 409,
    "already_exists": 409,
    "already_live": 409,
    "not_live": 409,
    "no_hls": 409,
    "sold_out": 409,
    "limit_exceeded": 409,
    "not_started": 409,
    "ended": 409,
    "idempotency_key_reused": 409,
    "insufficient_stock": 409,
    "not_cancellable": 409,
    "not_refundable": 409,
    "not_payable": 409,
    "details_required": 409,
    "not_shippable": 409,
    "not_deliverable": 409,
    "not_closable": 409,
    "not_returnable": 409,
    "no_return_request": 409,
    "draw_closed": 409,
    "already_entered": 409,
    "claim_expired": 409,
    "not_offered": 409,
    "already_registered": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "slow_mode": 429,
    "internal": 500,
    "payment_provider_error": 502,
    "unavailable": 503,
    "over_capacity": 503,
}


class AppError(Exception):
    """An error the client should see: `{"error": {"code", "message"}}` with the table's status."""

    def __init__(self, code: str, message: str, *, details: dict[str, Any] | None = None) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"unknown error code {code!r}: add it to livecommerce.errors.HTTP_STATUS")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body
