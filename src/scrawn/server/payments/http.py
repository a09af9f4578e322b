"""The HTTP side of payments: the public checkout link ``/checkout/{id}``, the providers' inbound webhooks
``/webhooks/{provider}``, and the dash-key JSON API for the provider configuration."""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from scrawn.errors import NotFoundError
from scrawn.money import format_amount
from scrawn.server.api_support import Wrap, json_object
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import Caller
from scrawn.server.logs import note_caller
from scrawn.server.logs import request_id as current_request_id
from scrawn.server.openapi import BOOLEAN, DECIMAL, INTEGER, STRING, UNIX_MS, array, nullable, obj, operation
from scrawn.server.payments import config as configs
from scrawn.server.payments import repository
from scrawn.server.payments.providers import PROVIDERS, WebhookRejected
from scrawn.server.payments.service import apply_webhook, find_by_payment, find_checkout
from scrawn.server.payments.types import CheckoutRecord
from scrawn.server.secretbox import SecretBox

log = logging.getLogger("scrawn.payments")
MAX_WEBHOOK_BYTES = 1024 * 1024
# What the configuration API declares (server/openapi.py).
PROVIDER = {"enum": sorted(PROVIDERS)}
CONFIG = obj(
    {
        "provider": PROVIDER,
        "mode": STRING,
        "apiKey": STRING,
        "storeId": nullable(STRING),
        "variantId": nullable(STRING),
        "productName": nullable(STRING),
        "currency": STRING,
        "returnUrl": nullable(STRING),
        "webhookSecret": STRING,
        "apiBase": nullable(STRING),
        "checkoutTtl": INTEGER,
    }
)
CONFIG_IN = obj(
    {"provider": PROVIDER, "apiKey": STRING, "webhookSecret": STRING},
    {
        "storeId": STRING,
        "variantId": STRING,
        "productName": STRING,
        "currency": STRING,
        "returnUrl": STRING,
        "apiBase": STRING,
        "checkoutTtl": {"type": "integer", "minimum": 3600, "maximum": 86400},
    },
)
CHECKOUT = obj(
    {
        "id": STRING,
        "userId": STRING,
        "purpose": STRING,
        "amount": DECIMAL,
        "charge": INTEGER,
        "currency": STRING,
        "provider": STRING,
        "status": STRING,
        "paidCharge": nullable(INTEGER),
        "refundedCharge": INTEGER,
        "expiresAt": UNIX_MS,
        "createdAt": UNIX_MS,
    }
)

_PAGES = {  # checkout status → (HTTP status, what the payer is told)
    "creating": (503, "This checkout is being prepared. Refresh the page in a moment."),
    "paid": (200, "This checkout has been paid. Thank you!"),
    "refunded": (200, "This checkout was paid and has since been refunded."),
    "expired": (410, "This checkout link has expired. Ask for a new payment link."),
    "replaced": (410, "This checkout link was replaced by a newer one. Use the latest payment link."),
    "failed": (410, "The payment for this checkout failed. Ask for a new payment link."),
    "error": (410, "This checkout could not be created. Ask for a new payment link."),
}


def _page(status: int, message: str, **headers: str) -> HTMLResponse:
    text = html.escape(message)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f'<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto">'
        f"<h1>Checkout</h1><p>{text}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=headers)


class PaymentsHttp:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def routes(self, wrap: Wrap) -> list[Route]:
        return [
            Route("/checkout/{id}", self.checkout, methods=["GET"]),
            Route("/webhooks/lemonsqueezy", self.lemonsqueezy, methods=["POST"]),
            Route("/webhooks/stripe", self.stripe, methods=["POST"]),
            Route("/api/v1/payments/config", wrap(self.get_config, "manage payments"), methods=["GET"]),
            Route("/api/v1/payments/config", wrap(self.put_config, "manage payments"), methods=["PUT"]),
            Route("/api/v1/payments/config", wrap(self.delete_config, "manage payments"), methods=["DELETE"]),
            Route(
                "/api/v1/payments/checkouts", wrap(self.list_checkouts, "manage payments"), methods=["GET"]
            ),
        ]

    # The payer's link ------------------------------------------------------------------------------------

    async def checkout(self, request: Request) -> Response:
        async with self._db.read() as conn:
            row = await find_checkout(conn, request.path_params["id"])
        if row is None:
            return _page(404, "This checkout link does not exist.")
        if row.status == "open":
            assert row.provider_url is not None  # set in the same update that opens it
            if row.expires_at > now_ms():
                return RedirectResponse(row.provider_url, status_code=302)
            return _page(*_PAGES["expired"])
        status, message = _PAGES.get(row.status, _PAGES["error"])
        return _page(status, message, **({"Retry-After": "2"} if row.status == "creating" else {}))

    # Inbound provider webhooks ---------------------------------------------------------------------------

    async def lemonsqueezy(self, request: Request) -> Response:
        return await self._inbound(request, "lemonsqueezy")

    async def stripe(self, request: Request) -> Response:
        return await self._inbound(request, "stripe")

    async def _inbound(self, request: Request, name: str) -> Response:
        try:
            outcome = await self._receive(request, name)
        except WebhookRejected as e:
            log.warning("%s webhook refused (%d): %s", name, e.status, e.message)
            return JSONResponse({"error": e.message}, status_code=e.status)
        except Exception:  # the database, most likely: 503 makes the provider retry later
            request_id = current_request_id()
            log.exception("%s webhook failed (request id %s)", name, request_id)
            return JSONResponse(
                {"error": f"temporarily unavailable (request id {request_id})"}, status_code=503
            )
        return JSONResponse({"received": True, "outcome": outcome})

    async def _receive(self, request: Request, name: str) -> str:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                raise WebhookRejected(413, f"body larger than {MAX_WEBHOOK_BYTES} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise WebhookRejected(400, "body is not a JSON object")
        provider = PROVIDERS[name]
        headers = {k.lower(): v for k, v in request.headers.items()}
        checkout_id, payment_id = provider.checkout_id(payload), provider.payment_id(payload)
        async with self._db.read() as conn:
            row = await find_checkout(conn, checkout_id) if checkout_id else None
            if row is None and payment_id:
                row = await find_by_payment(conn, name, payment_id)
            if row is None or row.provider != name:
                raise WebhookRejected(404, "unknown checkout: the event names no checkout this server made")
            note_caller(row.project_id, mode=row.mode)
            config = await configs.load(conn, self._box, row.project_id, row.mode)
        if config is None or config.provider != name:
            raise WebhookRejected(404, f"the checkout's project has no {name} configuration any more")
        provider.verify(config, body, headers)  # on the raw body, before anything is believed
        fact = provider.interpret(payload)
        async with self._db.write() as conn:
            outcome = await apply_webhook(conn, config, row, fact)
        log.info("%s webhook %s (%s): %s for checkout %s", name, fact.event_id, fact.type, outcome, row.id)
        return outcome

    # Configuration API (dash keys) -----------------------------------------------------------------------

    @operation("The payment provider configuration (secrets hidden)", "payments", CONFIG)
    async def get_config(self, request: Request, caller: Caller) -> Response:
        async with self._db.read() as conn:
            config = await configs.load(conn, self._box, caller.project_id, caller.mode)
        if config is None:
            raise NotFoundError(configs.NOT_CONFIGURED, field="provider")
        return JSONResponse(config.public())

    @operation("Configure the payment provider", "payments", CONFIG, body=CONFIG_IN)
    async def put_config(self, request: Request, caller: Caller) -> Response:
        values = await json_object(request)
        async with self._db.write() as conn:
            config = await configs.save(conn, self._box, caller.project_id, caller.mode, values)
        return JSONResponse(config.public())

    @operation("Remove the payment provider configuration", "payments", obj({"removed": BOOLEAN}))
    async def delete_config(self, request: Request, caller: Caller) -> Response:
        async with self._db.write() as conn:
            removed = await configs.remove(conn, caller.project_id, caller.mode)
        return JSONResponse({"removed": removed})

    @operation(
        "The latest checkouts (100)",
        "payments",
        obj({"checkouts": array(CHECKOUT)}),
        query={"userId": STRING},
    )
    async def list_checkouts(self, request: Request, caller: Caller) -> Response:
        user = request.query_params.get("userId")
        async with self._db.read() as conn:
            rows = await repository.list_checkouts(conn, caller.project_id, caller.mode, user, 100)
        return JSONResponse({"checkouts": [checkout_json(r) for r in rows]})


def checkout_json(row: CheckoutRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "userId": row.user_id,
        "purpose": row.purpose,
        "amount": format_amount(row.amount),
        "charge": row.charge,
        "currency": row.currency,
        "provider": row.provider,
        "status": row.status,
        "paidCharge": row.paid_charge,
        "refundedCharge": row.refunded_charge,
        "expiresAt": row.expires_at,
        "createdAt": row.created_at,
    }
