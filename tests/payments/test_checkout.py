"""Checkout links and payment webhooks end to end, on SQLite and PostgreSQL: a real ``scrawn serve``, the SDK,
and local HTTP servers that speak Lemon Squeezy's and Stripe's APIs (tests/payments/fake_providers.py).

Live mode of the module's project is configured with Lemon Squeezy and test mode with Stripe, so every test
runs against one server per database with its own users."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scrawn import Scrawn, verify_webhook
from scrawn.errors import FailedPreconditionError, UnavailableError, ValidationError
from scrawn.server.db.schema import checkouts, ledger_entries, payment_configs
from tests.conftest import ServerHandle, run_async
from tests.payments.fake_providers import FakeLemonSqueezy, FakeStripe

LS_KEY, LS_SECRET = "ls_test_key_" + "k" * 20, "ls-signing-secret"
STRIPE_KEY, STRIPE_SECRET = "sk_test_" + "s" * 24, "whsec_stripe_test_secret"


class Receiver:
    """The project's own webhook endpoint: records every delivery and answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self, secret: str, type_: str, timeout: float = 15) -> list[Any]:
        """The verified events of ``type_`` received so far, waiting until there is at least one."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [verify_webhook(body, headers, secret) for headers, body in self.received]
            found = [e for e in found if e.type == type_]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="module")
def setup(module_server: ServerHandle) -> Iterator[dict[str, Any]]:
    ls, stripe = FakeLemonSqueezy(LS_KEY, LS_SECRET), FakeStripe(STRIPE_KEY, STRIPE_SECRET)
    receivers = {"live": Receiver(), "test": Receiver()}
    with ls, stripe:
        dash = {"authorization": f"Bearer {module_server.dash_key}"}
        secrets: dict[str, str] = {}
        for mode, body in (
            (
                "live",
                {
                    "provider": "lemonsqueezy",
                    "apiKey": LS_KEY,
                    "webhookSecret": LS_SECRET,
                    "storeId": "1234",
                    "variantId": "5678",
                    "apiBase": ls.base_url,
                },
            ),
            (
                "test",
                {
                    "provider": "stripe",
                    "apiKey": STRIPE_KEY,
                    "webhookSecret": STRIPE_SECRET,
                    "productName": "API usage",
                    "apiBase": stripe.base_url,
                },
            ),
        ):
            headers = {**dash, "x-scrawn-mode": mode}
            put = httpx.put(f"{module_server.base_url}/api/v1/payments/config", json=body, headers=headers)
            assert put.status_code == 200, put.text
            hook = httpx.put(
                f"{module_server.base_url}/api/v1/webhooks/endpoint",
                json={"url": receivers[mode].url},
                headers=headers,
            )
            assert hook.status_code in (200, 201), hook.text
            secrets[mode] = hook.json()["secret"]
        yield {"ls": ls, "stripe": stripe, "receivers": receivers, "secrets": secrets}
    for receiver in receivers.values():
        receiver.close()


def new_user() -> str:
    return f"payer_{uuid.uuid4().hex[:10]}"


def bill(client: Scrawn, user: str, amount: str) -> None:
    client.basic_usage_event_consumer(user_id=user, debit=Decimal(amount))


def checkout_id(link: str) -> str:
    return link.rsplit("/", 1)[-1]


def checkout_row(server: ServerHandle, cid: str) -> Any:
    async def read() -> Any:
        db = server.db()
        try:
            async with db.read() as conn:
                return (await conn.execute(select(checkouts).where(checkouts.c.id == cid))).one()
        finally:
            await db.dispose()

    return run_async(read())


def provider_url(server: ServerHandle, link: str) -> str:
    answer = httpx.get(link, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


# --------------------------------------------------------------------------------------- full cycles


def test_lemonsqueezy_full_cycle(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    ls: FakeLemonSqueezy = setup["ls"]
    user = new_user()
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        bill(client, user, "1234.5")
        link = client.collect_payment(user)
        assert link == f"{module_server.base_url}/checkout/{checkout_id(link)}"
        assert client.collect_payment(user) == link  # one open checkout per user and amount

        session = provider_url(module_server, link)
        ls_id = session.rsplit("/", 1)[-1]
        created = ls.api_requests("POST", "/v1/checkouts")
        mine = [r.json()["data"] for r in created]
        mine = [d for d in mine if d["attributes"]["checkout_data"]["custom"]["scrawn_user_id"] == user]
        assert len(mine) == 1  # the repeated call made no second provider checkout
        attributes = mine[0]["attributes"]
        assert attributes["custom_price"] == 1235  # 1234.5 cents rounded up to a whole cent
        assert attributes["checkout_data"]["custom"]["scrawn_checkout_id"] == checkout_id(link)
        assert mine[0]["relationships"]["store"]["data"]["id"] == "1234"
        assert created[-1].headers["content-type"] == "application/vnd.api+json"
        assert httpx.get(session).status_code == 200  # the payer lands on the provider's page

        body, headers = ls.order_created(ls_id)
        answer = ls.send(f"{module_server.base_url}/webhooks/lemonsqueezy", body, headers)
        assert answer.status_code == 200 and answer.json()["outcome"] == "paid"
        # the half cent paid beyond the balance stays on the ledger as credit
        assert client.wallet.balance(user).balance == Decimal("0.5")
        assert httpx.get(link, follow_redirects=False).status_code == 200  # "has been paid"
        assert "paid" in httpx.get(link).text

        events = [e for e in setup["receivers"]["live"].events(setup["secrets"]["live"], "payment.succeeded")]
        event = next(e for e in events if e.data["userId"] == user)
        assert event.data["amount"] == "1235" and event.data["charge"] == 1235
        assert event.data["balance"] == "0.5" and event.data["provider"] == "lemonsqueezy"

        # a refund of 235 cents is debited back; the refunded total only grows, so its replay changes nothing
        order_id = json.loads(body)["data"]["id"]
        refund, refund_headers = ls.order_refunded(order_id, refunded_amount=235)
        for _ in range(2):
            assert ls.send(
                f"{module_server.base_url}/webhooks/lemonsqueezy", refund, refund_headers
            ).is_success
        assert client.wallet.balance(user).balance == Decimal("-234.5")


def test_stripe_full_cycle(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    stripe: FakeStripe = setup["stripe"]
    user = new_user()
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        bill(client, user, "99.000001")
        link = client.collect_payment(user, return_url="https://example.com/thanks")
        session_url = provider_url(module_server, link)
        session_id = session_url.rsplit("/", 1)[-1]
        params = stripe.session_params[session_id]
        item = params["line_items"][0]
        assert item["price_data"]["unit_amount"] == "100" and item["price_data"]["currency"] == "usd"
        assert item["price_data"]["product_data"]["name"] == "API usage"
        assert params["metadata"]["scrawn_checkout_id"] == checkout_id(link)
        assert params["payment_intent_data"]["metadata"]["scrawn_user_id"] == user
        assert params["success_url"] == "https://example.com/thanks"
        request = next(r for r in stripe.api_requests("POST", "/v1/checkout/sessions") if r.form() == params)
        assert request.headers["idempotency-key"] == f"scrawn-checkout-{checkout_id(link)}"

        body, headers = stripe.checkout_completed(session_id)
        assert (
            stripe.send(f"{module_server.base_url}/webhooks/stripe", body, headers).json()["outcome"]
            == "paid"
        )
        assert client.wallet.balance(user).balance == Decimal("0.999999")
        events = setup["receivers"]["test"].events(setup["secrets"]["test"], "payment.succeeded")
        assert any(e.data["userId"] == user and e.data["mode"] == "test" for e in events)

        refund, refund_headers = stripe.charge_refunded(session_id, amount_refunded=100)
        answer = stripe.send(f"{module_server.base_url}/webhooks/stripe", refund, refund_headers)
        assert answer.json()["outcome"] == "refunded"
        assert client.wallet.balance(user).balance == Decimal("-99.000001")
        assert checkout_row(module_server, checkout_id(link)).status == "refunded"
        refunds = setup["receivers"]["test"].events(setup["secrets"]["test"], "payment.refunded")
        assert any(e.data["userId"] == user and e.data["amount"] == "100" for e in refunds)


# --------------------------------------------------------------------------------------- exactly once


def test_the_same_webhook_five_times_at_once_credits_once(
    module_server: ServerHandle, setup: dict[str, Any]
) -> None:
    stripe: FakeStripe = setup["stripe"]
    user = new_user()
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        bill(client, user, "500")
        link = client.collect_payment(user)
        session_id = provider_url(module_server, link).rsplit("/", 1)[-1]
        body, headers = stripe.checkout_completed(session_id)

        async def deliver_all() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as http:
                url = f"{module_server.base_url}/webhooks/stripe"
                return await asyncio.gather(
                    *(http.post(url, content=body, headers=headers) for _ in range(5))
                )

        answers = asyncio.run(deliver_all())
        assert [a.status_code for a in answers] == [200] * 5
        assert sorted(a.json()["outcome"] for a in answers) == ["duplicate"] * 4 + ["paid"]
        assert client.wallet.balance(user).balance == Decimal(0)
        assert len(payments_of(module_server, user)) == 1


def payments_of(server: ServerHandle, user: str) -> list[Any]:
    async def read() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(
                    await conn.execute(
                        select(ledger_entries).where(
                            ledger_entries.c.user_id == user, ledger_entries.c.kind.in_(("payment", "top_up"))
                        )
                    )
                )
        finally:
            await db.dispose()

    return run_async(read())


def test_usage_during_an_open_checkout_is_neither_lost_nor_billed_twice(
    module_server: ServerHandle, setup: dict[str, Any]
) -> None:
    ls: FakeLemonSqueezy = setup["ls"]
    user = new_user()
    hook = f"{module_server.base_url}/webhooks/lemonsqueezy"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        bill(client, user, "10")
        first = client.collect_payment(user)
        ls_id = provider_url(module_server, first).rsplit("/", 1)[-1]
        bill(client, user, "5")  # arrives while the checkout for 10 is open
        body, headers = ls.order_created(ls_id)
        for _ in range(3):  # replays change nothing
            assert ls.send(hook, body, headers).status_code == 200
        assert client.wallet.balance(user).balance == Decimal(-5)  # the later usage is still owed
        second = client.collect_payment(user)
        assert second != first
        assert checkout_row(module_server, checkout_id(second)).charge == 5


def test_a_changed_amount_replaces_the_open_session(
    module_server: ServerHandle, setup: dict[str, Any]
) -> None:
    stripe: FakeStripe = setup["stripe"]
    user = new_user()
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        bill(client, user, "10")
        first = client.collect_payment(user)
        first_session = provider_url(module_server, first).rsplit("/", 1)[-1]
        bill(client, user, "5")
        second = client.collect_payment(user)
        assert second != first
        assert checkout_row(module_server, checkout_id(second)).charge == 15
        assert stripe.sessions[first_session]["status"] == "expired"  # no orphaned provider session
        replaced = httpx.get(first, follow_redirects=False)
        assert replaced.status_code == 410 and "replaced" in replaced.text
        second_session = provider_url(module_server, second).rsplit("/", 1)[-1]
        body, headers = stripe.checkout_completed(second_session)
        assert stripe.send(f"{module_server.base_url}/webhooks/stripe", body, headers).is_success
        assert client.wallet.balance(user).balance == Decimal(0)


def test_top_up(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    stripe: FakeStripe = setup["stripe"]
    user = new_user()
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        link = client.collect_payment(user, top_up="2500")  # nothing owed: a prepaid top-up
        session_id = provider_url(module_server, link).rsplit("/", 1)[-1]
        assert stripe.session_params[session_id]["line_items"][0]["price_data"]["unit_amount"] == "2500"
        body, headers = stripe.checkout_completed(session_id)
        assert stripe.send(f"{module_server.base_url}/webhooks/stripe", body, headers).is_success
        balance = client.wallet.balance(user)
        assert balance.balance == Decimal(2500) and balance.available == Decimal(2500)
        assert [p.kind for p in payments_of(module_server, user)] == ["top_up"]


# --------------------------------------------------------------------------------------- refusals


def test_webhooks_that_are_not_genuine_are_refused(
    module_server: ServerHandle, setup: dict[str, Any]
) -> None:
    stripe: FakeStripe = setup["stripe"]
    ls: FakeLemonSqueezy = setup["ls"]
    user = new_user()
    base = module_server.base_url
    with Scrawn(module_server.test_key, base) as client:
        bill(client, user, "42")
        session_id = provider_url(module_server, client.collect_payment(user)).rsplit("/", 1)[-1]
        body, headers = stripe.checkout_completed(session_id)
        tampered = body.replace(b'"amount_total": 42', b'"amount_total": 4200').replace(
            b'"amount_total":42', b'"amount_total":4200'
        )
        assert tampered != body
        assert stripe.send(f"{base}/webhooks/stripe", tampered, headers).status_code == 401
        _, wrong = stripe.checkout_completed(session_id, secret="whsec_wrong")
        assert stripe.send(f"{base}/webhooks/stripe", body, {**headers, **wrong}).status_code == 401
        stale_body, stale = stripe.checkout_completed(session_id, timestamp=int(time.time()) - 3600)
        answer = stripe.send(f"{base}/webhooks/stripe", stale_body, stale)
        assert answer.status_code == 401 and "tolerance" in answer.text.lower()
        assert client.wallet.balance(user).balance == Decimal(-42)  # none of them moved money

    with Scrawn(module_server.live_key, base) as client:
        bill(client, user, "7")
        ls_id = provider_url(module_server, client.collect_payment(user)).rsplit("/", 1)[-1]
        body, headers = ls.order_created(ls_id)
        assert (
            ls.send(f"{base}/webhooks/lemonsqueezy", body, {**headers, "X-Signature": "0" * 64}).status_code
            == 401
        )
        _, wrong = ls.order_created(ls_id, secret="not-the-secret")
        assert ls.send(f"{base}/webhooks/lemonsqueezy", body, {**headers, **wrong}).status_code == 401
        assert client.wallet.balance(user).balance == Decimal(-7)

    for payload, status in (
        (b"not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"meta": {"custom_data": {"scrawn_checkout_id": str(uuid.uuid4())}}}).encode(), 404),
        (json.dumps({"meta": {"custom_data": {"scrawn_checkout_id": "../../etc"}}}).encode(), 404),
        (b"{}", 404),
    ):
        answer = httpx.post(f"{base}/webhooks/lemonsqueezy", content=payload, headers={"x-signature": "ab"})
        assert answer.status_code == status, (payload, answer.text)
        assert "error" in answer.json()
    assert "webhook refused" in module_server.log()  # logged at warning


def test_checkout_errors_are_clear(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    user = new_user()
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        with pytest.raises(FailedPreconditionError, match="nothing to pay"):
            client.collect_payment(user)
        for bad in ("-1", "0", "NaN", "Infinity", "abc"):
            with pytest.raises(ValidationError) as info:
                client.collect_payment(user, top_up=bad)
            assert info.value.field == "top_up"
        with pytest.raises(ValidationError) as info:
            client.collect_payment(user, return_url="javascript:alert(1)")
        assert info.value.field == "return_url"
    assert httpx.get(f"{module_server.base_url}/checkout/{uuid.uuid4()}").status_code == 404
    assert httpx.get(f"{module_server.base_url}/checkout/not-a-uuid").status_code == 404


def test_provider_outages_and_refusals(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    ls: FakeLemonSqueezy = setup["ls"]
    user = new_user()
    with Scrawn(module_server.live_key, module_server.base_url, max_retries=0) as client:
        bill(client, user, "3")
        ls.fail_next(1, 503)
        with pytest.raises(UnavailableError, match="Lemon Squeezy"):
            client.collect_payment(user)
        ls.fail_next(1, 422)
        with pytest.raises(FailedPreconditionError, match="Lemon Squeezy refused"):
            client.collect_payment(user)
        link = client.collect_payment(user)  # a failed attempt leaves no dead link behind
        assert provider_url(module_server, link).startswith(ls.base_url)


def test_unconfigured_and_configuration_api(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    base = module_server.base_url
    dash = {"authorization": f"Bearer {module_server.dash_key}"}
    shown = httpx.get(f"{base}/api/v1/payments/config", headers=dash).json()
    assert shown["provider"] == "lemonsqueezy" and shown["apiKey"] == "…" + LS_KEY[-4:]
    assert LS_KEY not in json.dumps(shown) and LS_SECRET not in json.dumps(shown)

    async def stored() -> list[Any]:
        db = module_server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(select(payment_configs)))
        finally:
            await db.dispose()

    for row in run_async(stored()):  # sealed at rest
        assert LS_KEY not in row.api_key and STRIPE_KEY not in row.api_key
        assert row.api_key.startswith("v1:") and row.webhook_secret.startswith("v1:")

    live = {"authorization": f"Bearer {module_server.live_key}"}
    refused = httpx.get(f"{base}/api/v1/payments/config", headers=live)
    assert refused.status_code == 403 and "manage payments" in refused.json()["message"]
    for body, field in (
        ({"provider": "paypal", "apiKey": "k", "webhookSecret": "s"}, "provider"),
        ({"provider": "stripe", "webhookSecret": "s"}, "apiKey"),
        ({"provider": "lemonsqueezy", "apiKey": "k", "webhookSecret": "s", "variantId": "1"}, "storeId"),
        ({"provider": "stripe", "apiKey": "k", "webhookSecret": "s", "currency": "dollars"}, "currency"),
        ({"provider": "stripe", "apiKey": "k", "webhookSecret": "s", "currency": "EUR"}, "currency"),
        ({"provider": "stripe", "apiKey": "k", "webhookSecret": "s", "returnUrl": "ftp://x"}, "returnUrl"),
        ({"provider": "stripe", "apiKey": "k", "webhookSecret": "s", "checkoutTtl": 10}, "checkoutTtl"),
    ):
        answer = httpx.put(f"{base}/api/v1/payments/config", json=body, headers=dash)
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.text

    # A project with no provider in a mode: FAILED_PRECONDITION saying what to configure.
    test_dash = {**dash, "x-scrawn-mode": "test"}
    saved = httpx.get(f"{base}/api/v1/payments/config", headers=test_dash).json()
    assert httpx.delete(f"{base}/api/v1/payments/config", headers=test_dash).json() == {"removed": True}
    try:
        user = new_user()
        with Scrawn(module_server.test_key, base) as client:
            bill(client, user, "1")
            with pytest.raises(FailedPreconditionError, match="scrawn payments configure") as info:
                client.collect_payment(user)
            assert info.value.field is None or info.value.field == "provider"
    finally:
        restored = {
            "provider": "stripe",
            "apiKey": STRIPE_KEY,
            "webhookSecret": STRIPE_SECRET,
            "productName": saved["productName"],
            "apiBase": saved["apiBase"],
        }
        assert (
            httpx.put(f"{base}/api/v1/payments/config", json=restored, headers=test_dash).status_code == 200
        )


def test_failed_and_expired_payments(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    stripe: FakeStripe = setup["stripe"]
    ls: FakeLemonSqueezy = setup["ls"]
    base = module_server.base_url
    user = new_user()
    with Scrawn(module_server.test_key, base) as client:
        bill(client, user, "30")
        link = client.collect_payment(user)
        session_id = provider_url(module_server, link).rsplit("/", 1)[-1]
        body, headers = stripe.async_payment_failed(session_id)
        assert stripe.send(f"{base}/webhooks/stripe", body, headers).json()["outcome"] == "failed"
        assert checkout_row(module_server, checkout_id(link)).status == "failed"
        failed = setup["receivers"]["test"].events(setup["secrets"]["test"], "payment.failed")
        assert any(e.data["checkoutId"] == checkout_id(link) and e.data["charge"] == 30 for e in failed)
        assert httpx.get(link, follow_redirects=False).status_code == 410
        assert client.wallet.balance(user).balance == Decimal(-30)  # nothing was paid

        retry = client.collect_payment(user)  # a failed checkout is not reused
        assert retry != link
        session_id = provider_url(module_server, retry).rsplit("/", 1)[-1]
        body, headers = stripe.session_expired(session_id)
        assert stripe.send(f"{base}/webhooks/stripe", body, headers).json()["outcome"] == "expired"
        expired = httpx.get(retry, follow_redirects=False)
        assert expired.status_code == 410 and "expired" in expired.text

    with Scrawn(module_server.live_key, base) as client:
        bill(client, user, "8")
        link = client.collect_payment(user)
        ls_id = provider_url(module_server, link).rsplit("/", 1)[-1]
        body, headers = ls.order_created(ls_id, status="failed")
        assert ls.send(f"{base}/webhooks/lemonsqueezy", body, headers).json()["outcome"] == "failed"
        assert client.wallet.balance(user).balance == Decimal(-8)


def test_checkout_links_over_grpc_and_the_async_sdk(
    module_server: ServerHandle, setup: dict[str, Any]
) -> None:
    from scrawn import AsyncScrawn
    from scrawn._proto.payment.v1 import payment_pb2 as pb
    from tests.clients import GrpcClient, bearer

    user = new_user()
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        bill(client, user, "12")
        link = client.collect_payment(user)
    with GrpcClient(module_server.grpc_target) as grpc_client:  # what the TypeScript SDK speaks
        answer = grpc_client.unary(
            "/payment.v1.PaymentService/CreateCheckoutLink",
            pb.CreateCheckoutLinkRequest(userId=user),
            bearer(module_server.live_key),
        )
    assert answer.checkoutLink == link

    async def from_async() -> str:
        async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
            return await client.collect_payment(user)

    assert asyncio.run(from_async()) == link


def test_cli_configures_and_lists(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    import subprocess
    import sys

    def scrawn(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scrawn.server.cli", "payments", *args],
            env={**module_server.env, "COLUMNS": "200", **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = scrawn("show", "--mode", "test")
    assert shown.returncode == 0 and "stripe" in shown.stdout and STRIPE_KEY not in shown.stdout
    bad = scrawn(
        "configure",
        "--provider",
        "paypal",
        "--mode",
        "test",
        SCRAWN_PROVIDER_API_KEY="k",
        SCRAWN_PROVIDER_WEBHOOK_SECRET="s",
    )
    assert bad.returncode == 1 and "provider: must be lemonsqueezy or stripe" in bad.stderr
    again = scrawn(
        "configure",
        "--provider",
        "stripe",
        "--product-name",
        "API usage",
        "--api-base",
        setup["stripe"].base_url,
        "--mode",
        "test",
        SCRAWN_PROVIDER_API_KEY=STRIPE_KEY,
        SCRAWN_PROVIDER_WEBHOOK_SECRET=STRIPE_SECRET,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert STRIPE_KEY not in again.stdout and STRIPE_KEY[-4:] in again.stdout
    # --json: the same settings as one object, the key masked, and `show --json` reads back what was saved
    as_json = scrawn(
        "configure",
        *("--provider", "stripe", "--product-name", "API usage", "--api-base", setup["stripe"].base_url),
        *("--mode", "test", "--json"),
        SCRAWN_PROVIDER_API_KEY=STRIPE_KEY,
        SCRAWN_PROVIDER_WEBHOOK_SECRET=STRIPE_SECRET,
    )
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    saved = json.loads(as_json.stdout)
    assert (saved["provider"], saved["product_name"]) == ("stripe", "API usage"), saved
    assert STRIPE_KEY not in as_json.stdout and STRIPE_SECRET not in as_json.stdout
    assert json.loads(scrawn("show", "--mode", "test", "--json").stdout) == saved
    user = new_user()
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        bill(client, user, "3")
        link = client.collect_payment(user)
    listed = scrawn("checkouts", "--mode", "test", "--user", user)
    assert listed.returncode == 0 and checkout_id(link) in listed.stdout and "open" in listed.stdout


def test_hostile_checkout_requests_over_connect(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    from scrawn._proto.payment.v1 import payment_pb2 as pb
    from tests.clients import ConnectClient, RpcError, bearer

    path = "/payment.v1.PaymentService/CreateCheckoutLink"
    cases: list[tuple[dict[str, str], str, str]] = [
        ({"userId": ""}, "invalid_argument", "userId"),
        ({"userId": "   "}, "invalid_argument", "userId"),
        ({"userId": "u" * 300}, "invalid_argument", "userId"),
        ({"userId": "u", "topUpAmount": ""}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "-5"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "NaN"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "Infinity"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "1e400"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "100000000"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "topUpAmount": "12,5"}, "invalid_argument", "topUpAmount"),
        ({"userId": "u", "returnUrl": "not a url"}, "invalid_argument", "returnUrl"),
        ({"userId": "u", "returnUrl": "https://x/" + "a" * 3000}, "invalid_argument", "returnUrl"),
    ]
    with ConnectClient(module_server.base_url) as client:
        for fields, code, field in cases:
            with pytest.raises(RpcError) as info:
                client.unary(path, pb.CreateCheckoutLinkRequest(**fields), bearer(module_server.live_key))
            assert (info.value.code, field in info.value.message) == (code, True), (
                fields,
                info.value.message,
            )
        with pytest.raises(RpcError) as info:
            client.unary(path, pb.CreateCheckoutLinkRequest(userId="u"), bearer(module_server.dash_key))
        assert info.value.code == "permission_denied"
        # A unicode user and the smallest top-up that still makes a whole cent.
        answer = client.unary(
            path,
            pb.CreateCheckoutLinkRequest(userId="用户-ü", topUpAmount="0.000001"),
            bearer(module_server.live_key),
        )
    assert checkout_row(module_server, checkout_id(answer.checkoutLink)).charge == 1


def test_a_checkout_stuck_creating_is_replaced(module_server: ServerHandle, setup: dict[str, Any]) -> None:
    """A server that died between writing the checkout and hearing from the provider leaves it ``creating``:
    after a minute it is replaced, so a payer never gets a link that stays 503."""
    from sqlalchemy import update

    user = new_user()
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        bill(client, user, "9")
        first = client.collect_payment(user)

        async def stick() -> None:
            db = module_server.db()
            try:
                async with db.write() as conn:
                    await conn.execute(
                        update(checkouts)
                        .where(checkouts.c.id == checkout_id(first))
                        .values(status="creating", created_at=checkouts.c.created_at - 120_000)
                    )
            finally:
                await db.dispose()

        run_async(stick())
        assert httpx.get(first, follow_redirects=False).status_code == 503
        second = client.collect_payment(user)
        assert second != first
        assert provider_url(module_server, second).startswith(setup["ls"].base_url)
        assert checkout_row(module_server, checkout_id(first)).status == "replaced"
