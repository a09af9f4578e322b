"""The checkout providers behind one small interface (DESIGN §7): create a hosted checkout, expire one, and
read and verify their webhooks. Lemon Squeezy is spoken over httpx (JSON:API); Stripe through ``stripe``.

Provider failures are mapped once, here: a refused request (bad key, bad ids) is FAILED_PRECONDITION naming
the provider's reason; an outage or a timeout is UNAVAILABLE, which clients retry."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
import stripe

from scrawn.errors import FailedPreconditionError, UnavailableError
from scrawn.server.clock import iso
from scrawn.server.payments.types import PaymentConfig

log = logging.getLogger("scrawn.payments")
TIMEOUT = 15.0
Kind = Literal["paid", "failed", "refunded", "expired", "ignored"]


@dataclass(frozen=True)
class CheckoutRequest:
    checkout_id: str
    user_id: str
    charge: int  # the currency's minor units
    return_url: str

    def custom_data(self, config: PaymentConfig) -> dict[str, str]:
        """Our ids, carried by the provider back to us in every webhook about this checkout."""
        return {
            "scrawn_checkout_id": self.checkout_id,
            "scrawn_project_id": config.project_id,
            "scrawn_mode": config.mode,
            "scrawn_user_id": self.user_id,
        }


@dataclass(frozen=True)
class ProviderSession:
    session_id: str
    url: str


@dataclass(frozen=True)
class WebhookFact:
    """What a verified webhook says, in our terms."""

    event_id: str  # unique per provider event: a replay carries the same one
    type: str  # the provider's event name
    kind: Kind
    checkout_id: str | None  # from the custom data we attached; None when the event does not carry it
    payment_id: str | None  # the provider's order / payment intent
    amount: int | None  # paid: the total paid; refunded: the total refunded so far (currency minor units)
    currency: str | None


class WebhookRejected(Exception):
    """A webhook that must be refused with a 4xx: ``status`` and a message for the provider's log."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Provider(Protocol):
    name: str

    async def create_checkout(
        self, config: PaymentConfig, request: CheckoutRequest, expires_at: int
    ) -> ProviderSession: ...

    async def expire_checkout(self, config: PaymentConfig, session_id: str) -> None: ...

    def checkout_id(self, payload: dict[str, Any]) -> str | None: ...

    def payment_id(self, payload: dict[str, Any]) -> str | None: ...

    def verify(self, config: PaymentConfig, body: bytes, headers: dict[str, str]) -> None: ...

    def interpret(self, payload: dict[str, Any]) -> WebhookFact: ...


def _dig(payload: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WebhookRejected(400, f"{what} must be a non-negative integer")
    return value


class LemonSqueezy:
    name = "lemonsqueezy"
    API = "https://api.lemonsqueezy.com"

    async def create_checkout(
        self, config: PaymentConfig, request: CheckoutRequest, expires_at: int
    ) -> ProviderSession:
        body = {
            "data": {
                "type": "checkouts",
                "attributes": {
                    "custom_price": request.charge,
                    "product_options": {"redirect_url": request.return_url},
                    "checkout_data": {"custom": request.custom_data(config)},
                    "expires_at": iso(expires_at),
                    "test_mode": config.mode == "test",
                },
                "relationships": {
                    "store": {"data": {"type": "stores", "id": config.store_id}},
                    "variant": {"data": {"type": "variants", "id": config.variant_id}},
                },
            }
        }
        headers = {
            "accept": "application/vnd.api+json",
            "content-type": "application/vnd.api+json",
            "authorization": f"Bearer {config.api_key}",
        }
        url = f"{(config.api_base or self.API).rstrip('/')}/v1/checkouts"
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                response = await http.post(url, content=json.dumps(body), headers=headers)
        except httpx.HTTPError as e:
            raise UnavailableError(f"Lemon Squeezy could not be reached ({type(e).__name__}); retry") from e
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"Lemon Squeezy answered {response.status_code}; retry")
        if response.status_code >= 400:
            raise FailedPreconditionError(
                f"Lemon Squeezy refused the checkout ({response.status_code}): {_jsonapi_error(response)}",
                field="provider",
            )
        data = response.json().get("data") or {}
        session_id, link = data.get("id"), _dig(data, "attributes", "url")
        if not isinstance(session_id, str) or not isinstance(link, str):
            raise UnavailableError("Lemon Squeezy answered without a checkout id and url; retry")
        return ProviderSession(session_id, link)

    async def expire_checkout(self, config: PaymentConfig, session_id: str) -> None:
        """Lemon Squeezy cannot expire a checkout early: it lapses at its ``expires_at``; a payment made on
        it meanwhile is still credited (docs/payments.md)."""

    def checkout_id(self, payload: dict[str, Any]) -> str | None:
        found = _dig(payload, "meta", "custom_data", "scrawn_checkout_id")
        return found if isinstance(found, str) else None

    def payment_id(self, payload: dict[str, Any]) -> str | None:
        found = _dig(payload, "data", "id")
        return str(found) if isinstance(found, str | int) and not isinstance(found, bool) else None

    def verify(self, config: PaymentConfig, body: bytes, headers: dict[str, str]) -> None:
        given = headers.get("x-signature", "")
        expected = hmac.new(config.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        if not given or not hmac.compare_digest(expected, given.strip().lower()):
            raise WebhookRejected(401, "X-Signature does not match the body")

    def interpret(self, payload: dict[str, Any]) -> WebhookFact:
        event = _dig(payload, "meta", "event_name")
        order = self.payment_id(payload)
        attributes = _dig(payload, "data", "attributes")
        if not isinstance(event, str) or order is None or not isinstance(attributes, dict):
            raise WebhookRejected(400, "expected meta.event_name, data.id and data.attributes")
        currency = attributes.get("currency")
        currency = currency.upper() if isinstance(currency, str) else None
        kind: Kind = "ignored"
        amount: int | None = None
        event_id = f"{event}:{order}"
        if event == "order_created":
            status = attributes.get("status")
            if status == "paid":
                kind, amount = "paid", _int(attributes.get("total"), "data.attributes.total")
            elif status == "failed":
                kind = "failed"
        elif event == "order_refunded":
            kind = "refunded"
            amount = _int(attributes.get("refunded_amount"), "data.attributes.refunded_amount")
            event_id = f"{event}:{order}:{amount}"  # Lemon Squeezy sends no event id; refunds accumulate
        return WebhookFact(event_id, event, kind, self.checkout_id(payload), order, amount, currency)


def _jsonapi_error(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("detail") or e.get("title")) for e in errors)[:300] or response.text[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


class Stripe:
    name = "stripe"
    TOLERANCE = 300  # seconds: Stripe's own default for Stripe-Signature timestamps

    def _client(self, config: PaymentConfig) -> stripe.StripeClient:
        bases: dict[str, str] = {"api": config.api_base.rstrip("/")} if config.api_base else {}
        return stripe.StripeClient(
            config.api_key,
            base_addresses=bases,  # type: ignore[arg-type]
            http_client=stripe.HTTPXClient(timeout=TIMEOUT),
            max_network_retries=2,  # safe: every create carries an idempotency key
        )

    async def create_checkout(
        self, config: PaymentConfig, request: CheckoutRequest, expires_at: int
    ) -> ProviderSession:
        custom = request.custom_data(config)
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": config.currency.lower(),
                        "unit_amount": request.charge,
                        "product_data": {"name": config.product_name or "Usage"},
                    },
                }
            ],
            "client_reference_id": request.checkout_id,
            "metadata": custom,
            "payment_intent_data": {"metadata": custom},
            "success_url": request.return_url,
            "expires_at": expires_at // 1000,
        }
        try:
            session = await self._client(config).v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": f"scrawn-checkout-{request.checkout_id}"},
            )
        except stripe.StripeError as e:
            raise _stripe_error(e) from e
        if not session.url:
            raise UnavailableError("Stripe answered without a checkout url; retry")
        return ProviderSession(session.id, session.url)

    async def expire_checkout(self, config: PaymentConfig, session_id: str) -> None:
        try:
            await self._client(config).v1.checkout.sessions.expire_async(session_id)
        except stripe.StripeError as e:  # already paid or expired: nothing is left open
            log.info("stripe: could not expire checkout session %s: %s", session_id, e.user_message or e)

    def checkout_id(self, payload: dict[str, Any]) -> str | None:
        found = _dig(payload, "data", "object", "metadata", "scrawn_checkout_id")
        return found if isinstance(found, str) else None

    def payment_id(self, payload: dict[str, Any]) -> str | None:
        found = _dig(payload, "data", "object", "payment_intent")
        return found if isinstance(found, str) else None

    def verify(self, config: PaymentConfig, body: bytes, headers: dict[str, str]) -> None:
        try:
            stripe.WebhookSignature.verify_header(
                body, headers.get("stripe-signature", ""), config.webhook_secret, self.TOLERANCE
            )
        except stripe.SignatureVerificationError as e:
            raise WebhookRejected(401, f"Stripe-Signature: {e.user_message or e}") from None

    def interpret(self, payload: dict[str, Any]) -> WebhookFact:
        event_id, event = payload.get("id"), payload.get("type")
        obj = _dig(payload, "data", "object")
        if not isinstance(event_id, str) or not isinstance(event, str) or not isinstance(obj, dict):
            raise WebhookRejected(400, "expected an event with id, type and data.object")
        currency = obj.get("currency")
        currency = currency.upper() if isinstance(currency, str) else None
        kind: Kind = "ignored"
        amount: int | None = None
        if event in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if obj.get("payment_status") in ("paid", "no_payment_required"):
                kind, amount = "paid", _int(obj.get("amount_total"), "data.object.amount_total")
        elif event == "checkout.session.async_payment_failed":
            kind = "failed"
        elif event == "checkout.session.expired":
            kind = "expired"
        elif event == "charge.refunded":
            kind = "refunded"
            amount = _int(obj.get("amount_refunded"), "data.object.amount_refunded")
        return WebhookFact(
            event_id, event, kind, self.checkout_id(payload), self.payment_id(payload), amount, currency
        )


def _stripe_error(error: stripe.StripeError) -> Exception:
    message = error.user_message or str(error)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or (
        error.http_status is not None and error.http_status >= 500
    ):
        return UnavailableError(f"Stripe is unavailable ({message}); retry")
    return FailedPreconditionError(f"Stripe refused the checkout: {message}", field="provider")


PROVIDERS: dict[str, Provider] = {"lemonsqueezy": LemonSqueezy(), "stripe": Stripe()}
