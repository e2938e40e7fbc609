"""Write docs/openapi.yaml, the OpenAPI 3.1 description of the HTTP API.

Request bodies come from the handlers' pydantic models, so the file follows the code; a test
checks that the committed file is what this script writes and that it names every route the
app registers. Run `python scripts/openapi.py` after changing a route or a body model;
`--check` exits 1 when the file is out of date.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from livecommerce import __version__
from livecommerce.commerce.api import (
    AfterLive,
    NewProduct,
    NewSale,
    NewSku,
    PlaceOrder,
    Reprice,
    Restock,
    SkuPrice,
    StockChange,
)
from livecommerce.commerce.checkout_api import BuyerDetailsBody, ShipToBody
from livecommerce.commerce.fulfilment_api import Parcel, Reason, ReturnAccepted
from livecommerce.draws.api import ClaimBody
from livecommerce.draws.service import StartDraw
from livecommerce.media.recordings_api import ClipBody
from livecommerce.web.accounts_api import GuestBody, LoginBody, SignUpBody, StreamKeyBody

SPEC_PATH = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
MAX_ID = 2**63 - 1

STAFF = [{"bearer": []}, {"cookie": []}]
ANYONE: list[dict[str, list[str]]] = [{}]
ANYONE_OR_SIGNED_IN = [{}, {"bearer": []}, {"cookie": []}]
ANYONE_OR_GUEST = [{}, {"bearer": []}]
STREAM_KEY = [{"streamKey": []}]


@dataclass(frozen=True)
class Operation:
    """One method on one path: what it is for, who may call it, what it takes and answers."""

    method: str
    path: str
    summary: str
    tag: str
    security: list[dict[str, list[str]]] = field(default_factory=lambda: STAFF)
    body: type[BaseModel] | str | None = None
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    answer: int = 200
    answer_type: str = "application/json"
    errors: tuple[int, ...] = ()
    redirect: str = ""  # when the operation may answer 307, what the redirect means


PAGES = "pages"
ID_QUERY = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
ISO_TIME = {"type": "string", "format": "date-time"}

OPERATIONS = [
    # accounts
    Operation(
        "post",
        "/api/auth/login",
        "Sign in with login and password (a guest's Bearer token: the account takes over the guest)",
        "accounts",
        ANYONE_OR_GUEST,
        LoginBody,
        errors=(401, 429),
    ),
    Operation(
        "post", "/api/auth/guest", "Become a guest viewer", "accounts", ANYONE, GuestBody, errors=(429,)
    ),
    Operation(
        "post",
        "/api/auth/signup",
        "Create a viewer account (a guest's token: the guest becomes it)",
        "accounts",
        ANYONE_OR_SIGNED_IN,
        SignUpBody,
        errors=(400, 409, 429),
    ),
    Operation("post", "/api/auth/logout", "Sign out everywhere", "accounts", ANYONE_OR_SIGNED_IN),
    Operation("get", "/api/me", "The caller's account", "accounts", errors=(401,)),
    Operation(
        "post", "/api/users/{user_id}/disable", "Disable an account", "accounts", errors=(401, 403, 404)
    ),
    Operation(
        "post",
        "/api/rooms/{room_id}/stream-keys",
        "Create a stream key",
        "accounts",
        body=StreamKeyBody,
        answer=201,
        errors=(401, 403, 404),
    ),
    Operation("post", "/api/rooms/{room_id}/follow", "Follow a room", "rooms", errors=(401, 403, 404)),
    Operation(
        "delete", "/api/rooms/{room_id}/follow", "Stop following a room", "rooms", errors=(401, 403, 404)
    ),
    # the live's bag and checkout
    Operation("get", "/api/rooms/{room_id}/bag", "The products of the room's live", "rooms", ANYONE),
    Operation(
        "put",
        "/api/rooms/{room_id}/bag/{product_id}",
        "Put a product in the live's bag",
        "rooms",
        errors=(401, 403, 404),
    ),
    Operation(
        "delete",
        "/api/rooms/{room_id}/bag/{product_id}",
        "Take a product out of the live's bag",
        "rooms",
        errors=(401, 403, 404),
    ),
    Operation(
        "get", "/api/me/details", "The caller's remembered checkout details", "checkout", errors=(401,)
    ),
    Operation(
        "put",
        "/api/me/details",
        "Remember checkout details",
        "checkout",
        body=BuyerDetailsBody,
        errors=(400, 401),
    ),
    Operation(
        "delete", "/api/me/details", "Delete the remembered checkout details", "checkout", errors=(401,)
    ),
    Operation(
        "put",
        "/api/orders/{order_id}/shipping",
        "Give a reserved order the buyer's details",
        "checkout",
        body=ShipToBody,
        errors=(400, 401, 404, 409),
    ),
    Operation(
        "get",
        "/api/orders/{order_id}/shipping",
        "An order's shipping details (its buyer; the shop's operators, recorded)",
        "checkout",
        errors=(401, 403, 404),
    ),
    Operation(
        "get",
        "/api/merchants/{merchant_id}/orders.csv",
        "Export the shop's orders with shipping details (recorded)",
        "checkout",
        query=(
            ("room_id", ID_QUERY),
            ("status", {"type": "string", "enum": ["reserved", "paid", "expired", "cancelled", "refunded"]}),
        ),
        answer_type="text/csv",
        errors=(400, 401, 403),
    ),
    # buyers
    Operation(
        "post", "/api/orders", "Reserve units (a Buy tap)", "orders", body=PlaceOrder, errors=(401, 404, 409)
    ),
    Operation(
        "get",
        "/api/orders",
        "The caller's last orders",
        "orders",
        query=(("room_id", ID_QUERY),),
        errors=(401,),
    ),
    Operation(
        "get",
        "/api/orders/changes",
        "The caller's order events after a point",
        "orders",
        query=(("after", {"type": "integer", "minimum": 0}),),
        errors=(400, 401),
    ),
    Operation(
        "get", "/api/orders/{order_id}", "One order with its parcel and history", "orders", errors=(401, 404)
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/cancel",
        "Cancel an order before it ships",
        "orders",
        errors=(401, 403, 404, 409, 502),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/return",
        "Ask for a return or refund",
        "orders",
        body=Reason,
        errors=(400, 401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/pay",
        "Start paying an order",
        "orders",
        errors=(401, 403, 404, 409, 502),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/test-confirm",
        "Mark an order paid (test mode)",
        "orders",
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/refund",
        "Refund a paid order",
        "fulfilment",
        body=Reason,
        errors=(401, 403, 404, 409, 502),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/ship",
        "Ship an order (carrier and tracking number)",
        "fulfilment",
        body=Parcel,
        errors=(400, 401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/shipments/import",
        "Ship orders from a tracking CSV file",
        "fulfilment",
        body="text/csv",
        errors=(400, 401, 403, 413, 415),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/deliver",
        "Mark an order delivered",
        "fulfilment",
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/close",
        "Close a delivered order",
        "fulfilment",
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/return/accept",
        "Accept a return: refund, and restock if chosen",
        "fulfilment",
        body=ReturnAccepted,
        errors=(400, 401, 403, 404, 409, 502),
    ),
    Operation(
        "post",
        "/api/orders/{order_id}/return/refuse",
        "Refuse a return, saying why",
        "fulfilment",
        body=Reason,
        errors=(400, 401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/payments/stripe/webhook",
        "Stripe events",
        "payments",
        ANYONE,
        "application/json",
        errors=(404,),
    ),
    Operation("get", "/api/rooms/{room_id}/sales", "A room's flash sales", "sales", ANYONE, errors=(404,)),
    Operation("get", "/api/sales/{sale_id}", "A flash sale", "sales", ANYONE, errors=(404,)),
    # operators
    Operation(
        "get",
        "/api/inventory",
        "A merchant's SKUs and stock",
        "inventory",
        query=(("merchant_id", ID_QUERY),),
        errors=(401, 403),
    ),
    Operation(
        "post",
        "/api/products",
        "Create a product",
        "inventory",
        body=NewProduct,
        answer=201,
        errors=(401, 403),
    ),
    Operation(
        "post",
        "/api/products/{product_id}/skus",
        "Create a SKU",
        "inventory",
        body=NewSku,
        answer=201,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/skus/{sku_id}/stock",
        "Count units in or out",
        "inventory",
        body=StockChange,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/skus/{sku_id}/price",
        "Change a SKU's price",
        "inventory",
        body=SkuPrice,
        errors=(401, 403, 404),
    ),
    Operation(
        "post",
        "/api/sales",
        "Start a flash sale",
        "sales",
        body=NewSale,
        answer=201,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/sales/{sale_id}/restock",
        "Add units to a sale",
        "sales",
        body=Restock,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "post",
        "/api/sales/{sale_id}/price",
        "Change a sale's price",
        "sales",
        body=Reprice,
        errors=(401, 403, 404, 409),
    ),
    Operation("post", "/api/sales/{sale_id}/end", "End a sale", "sales", errors=(401, 403, 404, 409)),
    Operation(
        "post",
        "/api/sales/{sale_id}/after-live",
        "Keep a sale open after the live, or not",
        "sales",
        body=AfterLive,
        errors=(401, 403, 404, 409),
    ),
    Operation(
        "get",
        "/api/rooms/{room_id}/orders",
        "A room's orders",
        "orders",
        query=(("status", {"type": "string"}),),
        errors=(401, 403, 404),
    ),
    Operation(
        "get", "/api/rooms/{room_id}/streams", "A room's stream sessions", "dashboard", errors=(401, 403, 404)
    ),
    Operation(
        "get",
        "/api/rooms/{room_id}/dashboard",
        "Sales dashboard (JSON or CSV)",
        "dashboard",
        query=(
            ("since", ISO_TIME),
            ("until", ISO_TIME),
            ("stream", ID_QUERY),
            ("bucket_s", {"type": "integer", "minimum": 1, "maximum": 86400}),
            ("format", {"type": "string", "enum": ["json", "csv"]}),
        ),
        errors=(401, 403, 404),
    ),
    # draws
    Operation(
        "post",
        "/api/rooms/{room_id}/draws",
        "Start a prize draw",
        "draws",
        body=StartDraw,
        answer=201,
        errors=(401, 403, 404, 409),
    ),
    Operation("get", "/api/rooms/{room_id}/draws", "A room's draws", "draws", ANYONE, errors=(404,)),
    Operation(
        "get", "/api/draws/{draw_id}", "A draw and its verification data", "draws", ANYONE, errors=(404,)
    ),
    Operation(
        "post", "/api/draws/{draw_id}/close", "Close a draw early", "draws", errors=(401, 403, 404, 409)
    ),
    Operation(
        "post",
        "/api/draws/{draw_id}/claim",
        "Claim a prize",
        "draws",
        body=ClaimBody,
        errors=(401, 403, 404, 409),
    ),
    # media
    Operation(
        "post",
        "/api/rooms/{room_id}/whip",
        "Publish (WHIP offer)",
        "media",
        STREAM_KEY,
        "application/sdp",
        query=(("takeover", {"type": "string"}),),
        answer=201,
        answer_type="application/sdp",
        errors=(400, 401, 404, 406, 409, 415, 429),
    ),
    Operation("options", "/api/rooms/{room_id}/whip", "WHIP preflight", "media", ANYONE, answer=204),
    Operation(
        "delete", "/api/rooms/{room_id}/whip/{resource_id}", "Stop publishing", "media", ANYONE, errors=(404,)
    ),
    Operation(
        "patch",
        "/api/rooms/{room_id}/whip/{resource_id}",
        "Not supported (no trickle ICE)",
        "media",
        ANYONE,
        answer=405,
    ),
    Operation(
        "options",
        "/api/rooms/{room_id}/whip/{resource_id}",
        "WHIP session preflight",
        "media",
        ANYONE,
        answer=204,
    ),
    Operation(
        "post",
        "/api/rooms/{room_id}/whep",
        "Watch (WHEP offer)",
        "media",
        ANYONE,
        "application/sdp",
        answer=201,
        answer_type="application/sdp",
        errors=(400, 404, 406, 409, 415, 503),
        redirect="This node is full: post the same offer to the WHEP endpoint in Location (another node)",
    ),
    Operation("options", "/api/rooms/{room_id}/whep", "WHEP preflight", "media", ANYONE, answer=204),
    Operation(
        "delete", "/api/rooms/{room_id}/whep/{resource_id}", "Stop watching", "media", ANYONE, errors=(404,)
    ),
    Operation(
        "patch",
        "/api/rooms/{room_id}/whep/{resource_id}",
        "Not supported (no trickle ICE)",
        "media",
        ANYONE,
        answer=405,
    ),
    Operation(
        "options",
        "/api/rooms/{room_id}/whep/{resource_id}",
        "WHEP session preflight",
        "media",
        ANYONE,
        answer=204,
    ),
    Operation(
        "get",
        "/api/rooms/{room_id}/stream",
        "A room's broadcast: its origin node, and this node's copy",
        "media",
        ANYONE,
        errors=(404,),
    ),
    Operation("get", "/api/ice-servers", "ICE servers for browsers", "media", ANYONE),
    # HLS, recordings and replays
    Operation(
        "get",
        "/hls/{room_id}/index.m3u8",
        "The live's LL-HLS playlist (blocking reload)",
        "hls",
        ANYONE,
        query=(
            ("_HLS_msn", {"type": "integer", "minimum": 0}),
            ("_HLS_part", {"type": "integer", "minimum": 0}),
        ),
        answer_type="application/vnd.apple.mpegurl",
        errors=(400, 404, 409),
    ),
    Operation(
        "get",
        "/hls/{room_id}/{session_id}/{name}",
        "A live's init segment, segment or part",
        "hls",
        ANYONE,
        answer_type="video/mp4",
        errors=(404,),
    ),
    Operation(
        "get",
        "/recordings/{session_id}/{name}",
        "A recording's VOD playlist, init segment or segment",
        "hls",
        ANYONE,
        answer_type="*/*",
        errors=(404, 503),
    ),
    Operation("get", "/api/rooms/{room_id}/recordings", "A room's recordings", "hls", errors=(401, 403, 404)),
    Operation(
        "delete",
        "/api/recordings/{session_id}",
        "Delete a recording",
        "hls",
        answer=204,
        errors=(401, 403, 404, 409, 503),
    ),
    Operation(
        "post",
        "/api/recordings/{session_id}/clips",
        "Mark a moment of a recording as a clip",
        "hls",
        body=ClipBody,
        answer=201,
        errors=(400, 401, 403, 404),
    ),
    Operation(
        "get",
        "/api/recordings/{session_id}",
        "A recording with its timeline of product moments and its clips",
        "hls",
        ANYONE,
        errors=(404,),
    ),
    # operations
    Operation("get", "/healthz", "The process runs", "health", ANYONE),
    Operation(
        "get",
        "/readyz",
        "PostgreSQL answers (and the stream registry, in a cluster)",
        "health",
        ANYONE,
        errors=(503,),
    ),
    Operation(
        "get",
        "/metrics",
        "Prometheus metrics",
        "health",
        [{}, {"metricsToken": []}],
        answer_type="text/plain",
        errors=(403,),
    ),
    # the room socket and the pages
    Operation(
        "get",
        "/ws/rooms/{room_id}",
        "The room WebSocket (docs/protocol.md)",
        "rooms",
        [{}, {"bearer": []}, {"cookie": []}, {"tokenQuery": []}],
        query=(("since", {"type": "integer", "minimum": 0}), ("v", {"type": "integer"})),
        answer=101,
        answer_type="",
        errors=(400, 401, 403, 404),
    ),
    Operation("get", "/", "The home page", PAGES, ANYONE, answer_type="text/html"),
    Operation(
        "get",
        "/watch/{room_id}",
        "The viewer's page",
        PAGES,
        ANYONE,
        answer_type="text/html",
        errors=(404,),
    ),
    Operation(
        "get",
        "/studio/{room_id}",
        "The anchor's page",
        PAGES,
        ANYONE,
        answer_type="text/html",
        errors=(404,),
    ),
    Operation(
        "get",
        "/console/{room_id}",
        "The operator's console",
        PAGES,
        ANYONE,
        answer_type="text/html",
        errors=(404,),
    ),
    Operation("get", "/orders", "The buyer's orders page", PAGES, ANYONE, answer_type="text/html"),
    Operation(
        "get",
        "/replay/{session_id}",
        "The replay page of a recorded live",
        PAGES,
        ANYONE,
        answer_type="text/html",
        errors=(404,),
    ),
    Operation(
        "get",
        "/static/{filename}",
        "The pages' scripts, styles and messages",
        PAGES,
        ANYONE,
        answer_type="*/*",
        errors=(404,),
    ),
]

ERROR_STATUSES = {
    400: "Bad input (`invalid`, `invalid_json`, `bad_request`, ...)",
    401: "No or refused credentials",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "No codec in common",
    409: "The state does not allow it",
    413: "Body too large",
    415: "Wrong content type",
    429: "Too many attempts (`Retry-After`)",
    502: "The payment provider did not answer",
    503: "PostgreSQL or Redis out of reach (`unavailable`), not ready, or over capacity (`Retry-After`)",
}

# Every operation may answer these: bad ids, NUL characters, oversized requests, and the
# database or broker out of reach.
COMMON_ERRORS = (400, 413, 503)

SUCCESS_DESCRIPTIONS = {
    101: "Switching to the WebSocket protocol",
    200: "OK",
    201: "Created",
    204: "No content",
    405: "Not supported (`Allow: DELETE, OPTIONS`)",
}


def _schema_of(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    """Put the model's JSON schema (and those it refers to) under components; return a $ref."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, nested in schema.pop("$defs", {}).items():
        schemas[name] = nested
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(operation: Operation) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": dict(ID_QUERY)}
        if name != "resource_id" and name != "filename"
        else {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_names(operation.path)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in operation.query
    ]
    return params


def _operation_id(operation: Operation) -> str:
    words = re.findall(r"[a-z0-9]+", operation.path.replace("{", "by_").replace("-", "_"))
    return "_".join([operation.method, *words]) if words else f"{operation.method}_index"


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _responses(operation: Operation) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": SUCCESS_DESCRIPTIONS[operation.answer]}
    if operation.answer == 405:
        answer = {"$ref": "#/components/responses/405"}
    elif operation.answer_type == "application/json":
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    elif operation.answer_type:
        answer["content"] = {operation.answer_type: {"schema": {"type": "string"}}}
    responses = {str(operation.answer): answer}
    if operation.redirect:
        responses["307"] = {
            "description": operation.redirect,
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        }
    for status in sorted({*COMMON_ERRORS, *operation.errors}):
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    if operation.tag == PAGES:  # a page or file for people, not a JSON answer
        responses["404"] = {"description": "No such room or file (an HTML page, or empty)"}
    return responses


def _request_body(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any] | None:
    if operation.body is None:
        return None
    if isinstance(operation.body, str):
        return {
            "required": True,
            "content": {
                operation.body: {
                    "schema": {"type": "string"}
                    if operation.body != "application/json"
                    else {"type": "object"}
                }
            },
        }
    return {
        "required": True,
        "content": {"application/json": {"schema": _schema_of(operation.body, schemas)}},
    }


def build_spec() -> dict[str, Any]:
    """The whole document, in a stable order."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "description": "stable code (livecommerce/errors.py)"},
                        "message": {"type": "string"},
                    },
                }
            },
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": operation.summary,
            "operationId": _operation_id(operation),
            "tags": [operation.tag],
            "security": operation.security,
        }
        if parameters := _parameters(operation):
            entry["parameters"] = parameters
        if body := _request_body(operation, schemas):
            entry["requestBody"] = body
        entry["responses"] = _responses(operation)
        paths.setdefault(operation.path, {})[operation.method] = entry
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "livecommerce",
            "version": __version__,
            "description": "The HTTP API of a livecommerce node; see docs/api.md and docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                str(status): {"description": text, "content": error_content}
                for status, text in ERROR_STATUSES.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from /api/auth/login or /api/auth/guest",
                },
                "cookie": {"type": "apiKey", "in": "cookie", "name": "lc_session"},
                "tokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "the room socket only",
                },
                "streamKey": {"type": "http", "scheme": "bearer", "description": "a stream key of the room"},
                "metricsToken": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN"},
            },
        },
    }


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full: readers should not have to follow YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Written by scripts/openapi.py from the code; do not edit by hand.\n"
    return header + yaml.dump(
        build_spec(), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100
    )


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SPEC_PATH.read_text() != text:
            print(f"{SPEC_PATH.name} is out of date: run python scripts/openapi.py", file=sys.stderr)
            return 1
        return 0
    SPEC_PATH.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
