"""The fake payment providers answer what the real clients send (the official ``stripe`` library over HTTP,
JSON:API over httpx) and sign webhooks the way the providers do."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe

from tests.payments.fake_providers import FakeLemonSqueezy, FakeStripe, parse_stripe_form

STRIPE_KEY = "sk_test_fake_" + "k" * 24
STRIPE_WHSEC = "whsec_fake_secret"
LS_KEY = "ls-api-key"
LS_SECRET = "ls-signing-secret"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe(STRIPE_KEY, STRIPE_WHSEC) as fake:
        yield fake


@pytest.fixture
def fake_ls() -> Iterator[FakeLemonSqueezy]:
    with FakeLemonSqueezy(LS_KEY, LS_SECRET) as fake:
        yield fake


def _client(fake: FakeStripe, api_key: str = STRIPE_KEY, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": fake.base_url},
        http_client=stripe.HTTPXClient(),
        max_network_retries=retries,
    )


def _session_params(amount: int = 500) -> Any:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "Credits"}},
                "quantity": 1,
            }
        ],
        "metadata": {"scrawn_checkout_id": "chk_1"},
        "payment_intent_data": {"metadata": {"scrawn_checkout_id": "chk_1"}},
        "client_reference_id": "user_1",
        "success_url": "https://example.com/ok",
        "expires_at": int(time.time()) + 3600,
    }


def test_parse_stripe_form() -> None:
    body = (
        b"line_items[0][price_data][unit_amount]=500&line_items[0][quantity]=1&line_items[1][quantity]=2"
        b"&metadata[a]=x&expand[0]=line_items&mode=payment&empty="
    )
    assert parse_stripe_form(body) == {
        "line_items": [{"price_data": {"unit_amount": "500"}, "quantity": "1"}, {"quantity": "2"}],
        "metadata": {"a": "x"},
        "expand": ["line_items"],
        "mode": "payment",
        "empty": "",
    }


async def test_stripe_library_create_replay_expire(fake_stripe: FakeStripe) -> None:
    client = _client(fake_stripe)
    params = _session_params()
    session = await client.v1.checkout.sessions.create_async(params, options={"idempotency_key": "k1"})
    assert session.id.startswith("cs_test_")
    assert session.url == f"{fake_stripe.base_url}/c/pay/{session.id}"
    assert session.amount_total == 500 and session.currency == "usd"
    assert session.status == "open" and session.payment_status == "unpaid"
    assert session.metadata is not None and session.metadata.to_dict() == {"scrawn_checkout_id": "chk_1"}
    assert session.client_reference_id == "user_1"
    assert session.expires_at == params["expires_at"]

    req = fake_stripe.api_requests("POST", "/v1/checkout/sessions")[0]
    assert req.headers["idempotency-key"] == "k1"
    assert "stripe-version" in req.headers
    sent = fake_stripe.session_params[session.id]
    assert sent["payment_intent_data"]["metadata"] == {"scrawn_checkout_id": "chk_1"}
    assert sent["line_items"][0]["price_data"]["unit_amount"] == "500"

    again = await client.v1.checkout.sessions.create_async(params, options={"idempotency_key": "k1"})
    assert again.id == session.id
    assert fake_stripe.created_count == 1

    with pytest.raises(stripe.IdempotencyError):
        await client.v1.checkout.sessions.create_async(
            _session_params(700), options={"idempotency_key": "k1"}
        )

    fetched = await client.v1.checkout.sessions.retrieve_async(session.id)
    assert fetched.id == session.id

    expired = await client.v1.checkout.sessions.expire_async(session.id)
    assert expired.status == "expired"
    assert fake_stripe.sessions[session.id]["status"] == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.checkout.sessions.expire_async(session.id)


async def test_stripe_errors(fake_stripe: FakeStripe) -> None:
    with pytest.raises(stripe.AuthenticationError):
        await _client(fake_stripe, api_key="sk_test_wrong_key_123456").v1.checkout.sessions.create_async(
            _session_params()
        )
    bad = _session_params()
    bad["line_items"][0]["price_data"]["unit_amount"] = 0
    with pytest.raises(stripe.InvalidRequestError) as err:
        await _client(fake_stripe).v1.checkout.sessions.create_async(bad)
    assert err.value.param == "line_items[0][price_data][unit_amount]"
    with pytest.raises(stripe.InvalidRequestError):
        await _client(fake_stripe).v1.checkout.sessions.retrieve_async("cs_test_missing")

    fake_stripe.fail_next(1, 500)
    with pytest.raises(stripe.APIError):
        await _client(fake_stripe).v1.checkout.sessions.create_async(_session_params())
    # with retries the library gets through an injected failure, under the same idempotency key
    fake_stripe.fail_next(1, 503)
    session = await _client(fake_stripe, retries=1).v1.checkout.sessions.create_async(_session_params())
    assert session.status == "open" and fake_stripe.created_count == 1
    posts = fake_stripe.api_requests("POST", "/v1/checkout/sessions")
    assert posts[-1].headers["idempotency-key"] == posts[-2].headers["idempotency-key"]


async def test_stripe_webhooks(fake_stripe: FakeStripe) -> None:
    session = await _client(fake_stripe).v1.checkout.sessions.create_async(_session_params())

    body, headers = fake_stripe.checkout_completed(session.id)
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_WHSEC)
    assert event.type == "checkout.session.completed"
    obj = event.data.object
    assert obj["status"] == "complete" and obj["payment_status"] == "paid"
    assert obj["payment_intent"].startswith("pi_") and obj["metadata"]["scrawn_checkout_id"] == "chk_1"

    body, headers = fake_stripe.charge_refunded(session.id, amount_refunded=200)
    event = stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_WHSEC)
    charge = event.data.object
    assert event.type == "charge.refunded" and charge["object"] == "charge"
    assert charge["amount"] == 500 and charge["amount_refunded"] == 200 and charge["refunded"] is False
    assert charge["payment_intent"] == obj["payment_intent"]
    assert charge["metadata"].to_dict() == {"scrawn_checkout_id": "chk_1"}
    body, _ = fake_stripe.charge_refunded(session.id, amount_refunded=500)
    assert json.loads(body)["data"]["object"]["refunded"] is True

    for build, type_ in (
        (fake_stripe.async_payment_failed, "checkout.session.async_payment_failed"),
        (fake_stripe.session_expired, "checkout.session.expired"),
    ):
        body, headers = build(session.id)
        assert stripe.Webhook.construct_event(body, headers["Stripe-Signature"], STRIPE_WHSEC).type == type_

    stale_body, stale = fake_stripe.session_expired(session.id, timestamp=int(time.time()) - 3600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(stale_body, stale["Stripe-Signature"], STRIPE_WHSEC)
    wrong_body, wrong = fake_stripe.session_expired(session.id, secret="whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(wrong_body, wrong["Stripe-Signature"], STRIPE_WHSEC)
    assert fake_stripe.sign(b"x", timestamp=1).startswith("t=1,v1=")

    async with httpx.AsyncClient() as http:
        page = await http.get(session.url or "")
    assert page.status_code == 200 and session.id in page.text


def _ls_headers(key: str = LS_KEY) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Accept": "application/vnd.api+json",
        "Content-Type": "application/vnd.api+json",
    }


def _ls_body(price: Any = 1500) -> dict[str, Any]:
    return {
        "data": {
            "type": "checkouts",
            "attributes": {
                "custom_price": price,
                "product_options": {"redirect_url": "https://example.com/ok"},
                "checkout_data": {"custom": {"scrawn_checkout_id": "chk_9"}},
                "expires_at": "2030-01-01T00:00:00Z",
                "test_mode": True,
            },
            "relationships": {
                "store": {"data": {"type": "stores", "id": "12"}},
                "variant": {"data": {"type": "variants", "id": "34"}},
            },
        }
    }


def test_lemon_squeezy_checkout_and_webhooks(fake_ls: FakeLemonSqueezy) -> None:
    url = f"{fake_ls.base_url}/v1/checkouts"
    r = httpx.post(url, json=_ls_body(), headers=_ls_headers())
    assert r.status_code == 201 and r.headers["content-type"] == "application/vnd.api+json"
    data = r.json()["data"]
    attrs = data["attributes"]
    assert data["type"] == "checkouts" and data["id"] in fake_ls.checkouts
    assert (attrs["store_id"], attrs["variant_id"], attrs["custom_price"]) == (12, 34, 1500)
    assert attrs["checkout_data"]["custom"] == {"scrawn_checkout_id": "chk_9"}
    assert attrs["url"] == f"{fake_ls.base_url}/checkout/custom/{data['id']}"
    page = httpx.get(attrs["url"])
    assert page.status_code == 200 and f"Lemon Squeezy checkout {data['id']}" in page.text

    bad = httpx.post(url, json=_ls_body(price=0), headers=_ls_headers())
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["source"]["pointer"] == "/data/attributes/custom_price"
    assert httpx.post(url, json=_ls_body(), headers=_ls_headers("nope")).status_code == 401
    assert httpx.post(url, json=_ls_body(), headers={**_ls_headers(), "Accept": "*/*"}).status_code == 406
    fake_ls.fail_next(2, 503)
    assert httpx.post(url, json=_ls_body(), headers=_ls_headers()).status_code == 503
    assert httpx.post(url, json=_ls_body(), headers=_ls_headers()).json()["errors"][0]["status"] == "503"
    assert httpx.post(url, json=_ls_body(), headers=_ls_headers()).status_code == 201
    assert len(fake_ls.requests) == 8

    body, headers = fake_ls.order_created(data["id"])
    expected = hmac.new(LS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert (
        hmac.compare_digest(headers["X-Signature"], expected) and headers["X-Event-Name"] == "order_created"
    )
    order = json.loads(body)
    assert order["meta"]["custom_data"] == {"scrawn_checkout_id": "chk_9"}
    assert order["data"]["attributes"]["total"] == 1500 and order["data"]["attributes"]["status"] == "paid"
    order_id = order["data"]["id"]
    assert fake_ls.order_checkout[order_id] == data["id"]
    assert fake_ls.sign(body, "other") != headers["X-Signature"]

    body, headers = fake_ls.order_refunded(order_id, refunded_amount=500)
    refund = json.loads(body)["data"]["attributes"]
    assert headers["X-Event-Name"] == "order_refunded" and headers["X-Signature"] == fake_ls.sign(body)
    assert (refund["refunded"], refund["refunded_amount"], refund["status"]) == (True, 500, "partial_refund")
    body, _ = fake_ls.order_refunded(order_id, refunded_amount=1500)
    assert json.loads(body)["data"]["attributes"]["status"] == "refunded"

    # send() delivers to any endpoint: here, the fake itself records it (and answers 404)
    assert fake_ls.send(f"{fake_ls.base_url}/hook", body, headers).status_code == 404
    assert fake_ls.requests[-1].body == body
