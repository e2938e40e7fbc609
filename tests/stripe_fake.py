"""A local HTTP server that speaks the part of Stripe's API the payments module uses.

stripe-python is pointed at it with `stripe_api_base`. It answers PaymentIntent and Refund
requests in Stripe's JSON shapes (form-encoded requests, `Idempotency-Key` replays), and builds
webhook events signed exactly as Stripe signs them: `Stripe-Signature: t=<unix>,v1=<hex>` where
v1 is HMAC-SHA256 of `"<t>.<payload>"` under the endpoint's webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

WEBHOOK_SECRET = "whsec_test_local_secret"
"""The webhook secret the test server and the fake share."""

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_fake{next(_ids):08d}"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for a payload."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _form(data: Any) -> dict[str, Any]:
    """Stripe's bracketed form encoding (`metadata[order_id]=5`) back into nested dicts."""
    result: dict[str, Any] = {}
    for raw_key, value in data.items():
        parts = raw_key.replace("]", "").split("[")
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return result


@dataclass
class FakeStripe:
    webhook_secret: str
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, str | None, dict[str, Any]]] = field(default_factory=list)
    """(method, path, Idempotency-Key, params) of every API call received."""
    fail_next: int = 0
    _replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/payment_intents", self._create_intent)
        app.router.add_post("/v1/refunds", self._create_refund)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _idempotent(self, request: web.Request, make) -> web.Response:
        params = _form(await request.post())
        key = request.headers.get("Idempotency-Key")
        self.requests.append((request.method, request.path, key, params))
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response(
                {"error": {"type": "api_error", "message": "the fake is down for this call"}}, status=500
            )
        if key is not None and key in self._replies:
            status, body = self._replies[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        status, body = make(params)
        if key is not None:
            self._replies[key] = (status, body)
        return web.json_response(body, status=status)

    async def _create_intent(self, request: web.Request) -> web.Response:
        def make(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            intent_id = _id("pi")
            intent = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": int(params["amount"]),
                "amount_received": 0,
                "currency": params["currency"],
                "status": "requires_payment_method",
                "client_secret": f"{intent_id}_secret_{_id('cs')}",
                "metadata": params.get("metadata", {}),
                "livemode": False,
                "created": int(time.time()),
            }
            self.intents[intent_id] = intent
            return 200, intent

        return await self._idempotent(request, make)

    async def _create_refund(self, request: web.Request) -> web.Response:
        def make(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            intent = self.intents.get(params.get("payment_intent", ""))
            if intent is None:
                error = {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": "No such payment_intent",
                }
                return 404, {"error": error}
            refunded = sum(r["amount"] for r in self.refunds if r["payment_intent"] == intent["id"])
            amount = int(params.get("amount", intent["amount"] - refunded))
            if amount <= 0 or refunded + amount > intent["amount"]:
                error = {
                    "type": "invalid_request_error",
                    "code": "charge_already_refunded" if refunded else "amount_too_large",
                    "message": "Refund amount is greater than the unrefunded amount of the charge",
                }
                return 400, {"error": error}
            refund = {
                "id": _id("re"),
                "object": "refund",
                "amount": amount,
                "currency": intent["currency"],
                "payment_intent": intent["id"],
                "charge": f"ch_of_{intent['id']}",
                "status": "succeeded",
                "metadata": params.get("metadata", {}),
            }
            self.refunds.append(refund)
            return 200, refund

        return await self._idempotent(request, make)

    # -- events ----------------------------------------------------------------------------------

    def event(self, type_: str, intent_id: str, *, amount: int | None = None) -> dict[str, Any]:
        """A webhook event about a PaymentIntent, in Stripe's event shape."""
        intent = self.intents[intent_id]
        if type_ == "charge.refunded":
            obj = {
                "id": f"ch_of_{intent_id}",
                "object": "charge",
                "amount": intent["amount"],
                "amount_refunded": intent["amount"] if amount is None else amount,
                "currency": intent["currency"],
                "payment_intent": intent_id,
                "refunded": True,
            }
        else:
            succeeded = type_ == "payment_intent.succeeded"
            obj = {
                **intent,
                "status": "succeeded" if succeeded else "requires_payment_method",
                "amount_received": (intent["amount"] if amount is None else amount) if succeeded else 0,
            }
        return {
            "id": _id("evt"),
            "object": "event",
            "type": type_,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": obj},
        }

    async def deliver(
        self,
        http: aiohttp.ClientSession,
        url: str,
        event: dict[str, Any],
        *,
        secret: str | None = None,
        signature: str | None = None,
        payload: bytes | None = None,
    ) -> tuple[int, Any]:
        """POST the event to a webhook endpoint, signed with the secret (or a given signature)."""
        body = payload if payload is not None else orjson.dumps(event)
        header = signature if signature is not None else sign(body, secret or self.webhook_secret)
        async with http.post(
            url, data=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
        ) as response:
            return response.status, await response.json()
