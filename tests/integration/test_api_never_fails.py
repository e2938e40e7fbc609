"""Schema-driven requests from docs/openapi.yaml against a real server: whatever the body, path
or query, the answer is never a 5xx, and every error has the `{"error": {"code", "message"}}`
shape. Seeded and bounded (a few examples per operation) so a run is quick and repeatable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import schemathesis
from commerce_client import call, new_key, start_sale
from helpers import LiveServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 8

# Calls that would sign the test's own accounts out for every later operation run last, in this
# order (signing up with a guest's token revokes it: the guest becomes an account).
RUN_LAST = ["post_api_auth_signup", "post_api_users_by_user_id_disable", "post_api_auth_logout"]


@schemathesis.serializer("application/sdp")
def _sdp(context: Any, value: Any) -> bytes:
    """WHIP and WHEP offers are text; the generated value is sent as it is."""
    return value.encode() if isinstance(value, str) else str(value).encode()


def _error_shape_problem(response: Any) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"a {response.status_code} whose body is not JSON: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        return f"a {response.status_code} without the error shape: {body!r}"
    return None


def _check_operation(
    operation: Any, base_url: str, tokens: list[str | None], ids: dict[str, Any]
) -> list[str]:
    """Run the operation's examples; return what went wrong, one line per failing example."""
    known = {name: value for name, value in ids.items() if name in operation.path}
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if known:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    problems: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies), token=st.sampled_from(tokens))
    def examples(case: Any, token: str | None) -> None:
        if token is not None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        response = case.call(base_url=base_url, timeout=60)
        where = f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.status_code} {response.text[:300]}")
        elif "pages" not in operation.tags and (problem := _error_shape_problem(response)):
            problems.append(f"{where}: {problem}")

    examples()
    return problems


async def test_no_request_gets_a_server_error(server: LiveServer) -> None:
    world = await server.seed(stock=50)
    async with aiohttp.ClientSession() as http:
        sale = await start_sale(
            http,
            server.url,
            world.tokens["operator"],
            room_id=world.room_id,
            sku_id=world.sku_id,
            allocated=10,
        )
        _, guest_token = await server.guest("Fuzzer")
        status, placed = await call(
            http,
            "POST",
            f"{server.url}/api/orders",
            guest_token,
            {"sale_id": sale["sale_id"], "idempotency_key": new_key()},
        )
        assert status == 200, placed
        status, draw = await call(
            http,
            "POST",
            f"{server.url}/api/rooms/{world.room_id}/draws",
            world.tokens["anchor"],
            {"prize_text": "A mug", "rule": "watching", "duration_seconds": 600},
        )
        assert status == 201, draw
    ids = {
        "room_id": world.room_id,
        "sale_id": sale["sale_id"],
        "sku_id": world.sku_id,
        "product_id": world.product_id,
        "order_id": placed["order"]["order_id"],
        "draw_id": draw["id"],
    }
    tokens = [None, guest_token, world.tokens["operator"], world.tokens["admin"]]
    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: (
            RUN_LAST.index(op_id) + 1 if (op_id := operation.definition.raw["operationId"]) in RUN_LAST else 0
        ),
    )

    def run_all() -> list[str]:
        return [problem for op in operations for problem in _check_operation(op, server.url, tokens, ids)]

    problems = await asyncio.to_thread(run_all)
    assert problems == [], "\n".join(problems)
