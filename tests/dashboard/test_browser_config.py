"""The configuration pages in headless Chromium over a real server (SQLite and PostgreSQL): Pricing (set a
tag, evaluate an expression), Payments (set up a provider that is a local fake Stripe, then a checkout
link), Webhooks (an endpoint that is a local HTTP server, a delivery, replay) and Quarantine (reprice)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import REGISTER, ConnectClient, bearer
from tests.conftest import ServerHandle
from tests.dashboard.browser import check_page, navigate, new_page, sign_in
from tests.dashboard.seed import Seeded
from tests.payments.fake_providers import FakeStripe

STRIPE_KEY, STRIPE_SECRET = "sk_test_" + "d" * 24, "whsec_dashboard_test"


ANSWER = b'{"received": true, "note": "<b>kept as text</b>"}'


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    """A loopback webhook endpoint that answers 200 with ``ANSWER`` and records each delivery's webhook-id."""
    ids: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            ids.append(self.headers.get("webhook-id", ""))
            self.send_response(200)
            self.send_header("content-length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", ids
    finally:
        server.shutdown()
        server.server_close()


def test_pricing_tag_and_evaluator(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path
) -> None:
    page = new_page(browser, module_server.base_url)
    sign_in(page, module_server.dash_key)
    set_tag(page, "PER_TOKEN", "0.0003")
    expect(page.get_by_role("cell", name="PER_TOKEN")).to_be_visible()
    # Who changed each tag: the dash key's id, whether through the dashboard or the JSON API (seed's CALL).
    dash = {"authorization": f"Bearer {module_server.dash_key}"}
    key_ids = {
        k["id"] for k in httpx.get(f"{module_server.base_url}/api/v1/keys", headers=dash).json()["keys"]
    }
    by = [
        page.get_by_role("row").filter(has_text=tag).locator("td").nth(5).inner_text()
        for tag in ("PER_TOKEN", "CALL")
    ]
    assert by[0] == by[1] and by[0] in key_ids
    page.get_by_label("Expression", exact=True).first.fill(
        "add(mul(inputTokens(), tag(PER_TOKEN)), tag(CALL))"
    )
    page.get_by_label("Input tokens").fill("1000")
    navigate(page, page.get_by_role("button", name="Evaluate"))
    # 1000 × 0.0003 + 1.5 = 1.8 cents, exact.
    expect(page.locator("#eval-answer")).to_contain_text("(1.8000 minor units, exact)")
    check_page(page, screenshots, "pricing")
    page.get_by_label("Expression", exact=True).first.fill("div(1, 0)")
    navigate(page, page.get_by_role("button", name="Evaluate"))
    expect(page.get_by_role("alert")).to_be_visible()
    # A named expression, an event price and a model price, each through its form.
    page.get_by_label("Name", exact=True).fill("WITH_CALL")
    page.get_by_label("Expression", exact=True).nth(1).fill("add(tag(CALL), 1)")
    navigate(page, page.get_by_role("button", name="Save expression"))
    expect(page.get_by_role("cell", name="WITH_CALL")).to_be_visible()
    page.get_by_label("Event type").fill("document.processed")
    page.get_by_label("Expression", exact=True).nth(2).fill("mul(quantity(), expr(WITH_CALL))")
    navigate(page, page.get_by_role("button", name="Save event price"))
    expect(page.get_by_role("cell", name="document.processed")).to_be_visible()
    page.get_by_label("Model", exact=True).fill("in-house-llm")
    page.get_by_label("Input per million tokens").fill("100")
    page.get_by_label("Output per million tokens").fill("300")
    navigate(page, page.get_by_role("button", name="Save model price"))
    expect(page.get_by_role("cell", name="in-house-llm")).to_be_visible()
    # A name still referenced, or a cycle, is refused with the catalog's own message.
    page.get_by_label("Name", exact=True).fill("LOOP")
    page.get_by_label("Expression", exact=True).nth(1).fill("expr(LOOP)")
    navigate(page, page.get_by_role("button", name="Save expression"))
    expect(page.get_by_role("alert")).to_be_visible()


def test_payments_setup_and_checkout_link(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path
) -> None:
    with FakeStripe(STRIPE_KEY, STRIPE_SECRET) as stripe:
        page = new_page(browser, module_server.base_url)
        sign_in(page, module_server.dash_key)
        page.goto("/dashboard/test/payments")
        expect(page.get_by_text("No payment provider in test mode")).to_be_visible()
        page.get_by_label("Provider", exact=True).select_option("stripe")
        page.get_by_label("API key").fill(STRIPE_KEY)
        page.get_by_label("Webhook secret").fill(STRIPE_SECRET)
        page.get_by_label("Provider API base (optional)").fill(stripe.base_url)
        navigate(page, page.get_by_role("button", name="Save provider"))
        assert STRIPE_KEY not in page.content()  # the key is never shown again
        expect(page.get_by_text(f"…{STRIPE_KEY[-4:]}")).to_be_visible()
        page.goto("/dashboard/test/customer?user=tess")
        navigate(page, page.get_by_role("button", name="Create checkout link"))
        link = page.locator("#checkout-link").get_attribute("href")
        assert link and "/checkout/" in link
        page.goto("/dashboard/test/payments")
        expect(page.get_by_role("cell", name="open")).to_be_visible()
        assert stripe.created_count == 1
        # The customer pays at the (fake) provider, whose signed webhook comes back: the checkout is paid,
        # the Overview charts the payment, and with a provider set nothing needs attention in test mode.
        session = httpx.get(link, follow_redirects=False)
        assert session.status_code == 302, session.text
        body, headers = stripe.checkout_completed(session.headers["location"].rsplit("/", 1)[-1])
        paid = stripe.send(f"{module_server.base_url}/webhooks/stripe", body, headers)
        assert paid.json()["outcome"] == "paid", paid.text
        page.goto("/dashboard/test/payments")
        expect(page.get_by_role("cell", name="paid", exact=True)).to_be_visible()
        check_page(page, screenshots, "payments")
        page.goto("/dashboard/test/overview")
        expect(page.locator(".tile").filter(has_text="Paid")).to_contain_text("0.77 USD")  # tess's 77 cents
        expect(page.get_by_text("Nothing needs attention.")).to_be_visible()
        check_page(page, screenshots, "overview-test-paid")


def test_webhook_endpoint_delivery_and_replay(
    module_server: ServerHandle,
    seeded: Seeded,
    browser: Any,
    screenshots: Path,
    receiver: tuple[str, list[str]],
) -> None:
    url, received = receiver
    page = new_page(browser, module_server.base_url)
    sign_in(page, module_server.dash_key)
    page.goto("/dashboard/live/webhooks")
    page.get_by_label("URL").fill(url)
    navigate(page, page.get_by_role("button", name="Save endpoint"))
    assert page.get_by_label("Signing secret", exact=True).input_value().startswith("whsec_")
    # A low-balance crossing sends balance.low.
    user = f"low-{uuid.uuid4().hex[:6]}"
    page.goto(f"/dashboard/live/customer?user={user}")
    page.get_by_label("Low-balance threshold (minor units; empty = none)").fill("100")
    navigate(page, page.get_by_role("button", name="Save cap and alert"))
    page.get_by_label("Amount (minor units of USD, exact)").fill("200")
    navigate(page, page.get_by_role("button", name="Grant credit"))
    with ConnectClient(module_server.base_url) as c:
        request = ev.RegisterEventRequest(
            type=ev.BASIC_USAGE,
            userId=user,
            basicUsage=ev.BasicUsage(amount=150),
            idempotencyKey=uuid.uuid4().hex,
        )
        c.unary(REGISTER, request, bearer(module_server.live_key))
    _wait(lambda: len(received) >= 1)
    # The endpoint has its message; the deliverer records "delivered" only once its answer is back.
    delivered = page.get_by_role("link", name=received[0])

    def listed() -> bool:
        page.goto("/dashboard/live/webhooks?status=delivered")
        return delivered.count() > 0

    _wait(listed)
    navigate(page, delivered)
    expect(page.locator("#wh-status")).to_have_text("delivered")
    expect(page.locator("pre.body").first).to_have_text(ANSWER.decode())  # the endpoint's answer
    check_page(page, screenshots, "webhook")
    navigate(page, page.get_by_role("button", name="Replay"))
    _wait(lambda: len(received) >= 2)
    assert received[1] == received[0]  # the same webhook-id: receivers deduplicate
    page.goto("/dashboard/live/webhooks")
    check_page(page, screenshots, "webhooks")


def test_quarantine_reprice(
    module_server: ServerHandle, seeded: Seeded, browser: Any, screenshots: Path
) -> None:
    page = new_page(browser, module_server.base_url)
    sign_in(page, module_server.dash_key)
    page.goto("/dashboard/live/quarantine")
    expect(page.get_by_role("cell", name="carol")).to_be_visible()
    check_page(page, screenshots, "quarantine")
    set_tag(page, "LATER", "12")
    page.goto("/dashboard/live/quarantine")
    navigate(page, page.get_by_role("button", name="Reprice every waiting event"))
    expect(page.get_by_role("status")).to_contain_text("Repriced 1 event(s) for 0.12 USD; 0 still waiting.")
    page.goto("/dashboard/live/events?user=carol")
    expect(page.get_by_role("cell", name="0.12 USD")).to_be_visible()


def set_tag(page: Any, name: str, price: str) -> None:
    page.goto("/dashboard/live/pricing")
    page.get_by_label("Name (A–Z, 0–9, _)").fill(name)
    page.get_by_label("Price (minor units, exact)").fill(price)
    navigate(page, page.get_by_role("button", name="Save tag"))


def _wait(done: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
