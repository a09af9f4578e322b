"""``payment.v1.PaymentService/CreateCheckoutLink`` (the TS SDK's ``collectPayment(userId)``) from the
TypeScript-ecosystem clients the Scrawn TS SDK is built on (grpc-js + proto-loader over h2c; connect-node's
gRPC, Connect and gRPC-web transports) against a real ``scrawn serve`` and a fake Lemon Squeezy, on SQLite and
PostgreSQL.

``tests/ts/checkout.mjs`` makes the calls and prints what the wire said. Needs Node ≥ 20 and
``npm ci --prefix tests/ts``: without them the test skips, or fails when ``SCRAWN_REQUIRE_POSTGRES=1``
(CI)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from scrawn import Scrawn
from tests.conftest import ServerHandle
from tests.payments.fake_providers import FakeLemonSqueezy

ROOT = Path(__file__).resolve().parents[2]
TS_DIR = ROOT / "tests" / "ts"
PROTO_DIR = ROOT / "proto"
TRANSPORTS = ["grpc-js", "connect-grpc", "connect", "connect-grpcweb"]
LS_KEY, LS_SECRET = "ls_test_key_" + "t" * 20, "ls-ts-signing-secret"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def lemonsqueezy(module_server: ServerHandle) -> Iterator[FakeLemonSqueezy]:
    """Live mode of the module's project takes payments through a fake Lemon Squeezy."""
    with FakeLemonSqueezy(LS_KEY, LS_SECRET) as fake:
        put = httpx.put(
            f"{module_server.base_url}/api/v1/payments/config",
            json={
                "provider": "lemonsqueezy",
                "apiKey": LS_KEY,
                "webhookSecret": LS_SECRET,
                "storeId": "1234",
                "variantId": "5678",
                "apiBase": fake.base_url,
            },
            headers={"authorization": f"Bearer {module_server.dash_key}", "x-scrawn-mode": "live"},
        )
        assert put.status_code == 200, put.text
        yield fake


def run_checkout(node: str, server: ServerHandle, user: str) -> dict:
    env = os.environ | {
        "SCRAWN_URL": server.base_url,
        "SCRAWN_TARGET": server.grpc_target,
        "SCRAWN_KEY": server.live_key,
        "SCRAWN_USER": user,
        "SCRAWN_PROTO_DIR": str(PROTO_DIR),
        "SCRAWN_PYTHON": sys.executable,
    }
    proc = subprocess.run(
        [node, str(TS_DIR / "checkout.mjs")], env=env, capture_output=True, text=True, timeout=240, cwd=TS_DIR
    )
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\nlog:\n{server.log()}"
    assert proc.returncode == 0, detail
    lines = proc.stdout.strip().splitlines()
    assert lines, detail
    return json.loads(lines[-1])


def test_typescript_clients_create_checkout_link(
    node: str, module_server: ServerHandle, lemonsqueezy: FakeLemonSqueezy
) -> None:
    user = f"ts_payer_{uuid.uuid4().hex[:10]}"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        client.basic_usage_event_consumer(user_id=user, debit=Decimal("250"))

    result = run_checkout(node, module_server, user)
    assert result["ok"] is True, result
    assert sorted(result["transports"]) == sorted(TRANSPORTS)
    links = set()
    for transport in TRANSPORTS:
        out = result["transports"][transport]
        assert out["errors"] == [], (transport, out)
        links.add(out["checkoutLink"])
        empty, nothing = out["emptyUser"], out["nothingToPay"]
        assert empty["code"] == "INVALID_ARGUMENT" and "userId" in empty["message"], (transport, empty)
        assert nothing["code"] == "FAILED_PRECONDITION", (transport, nothing)
        assert "nothing to pay" in nothing["message"], (transport, nothing)

    # One open checkout per user and amount: every transport got the same link.
    [link] = links
    assert re.fullmatch(re.escape(f"{module_server.base_url}/checkout/") + UUID, link), link

    created = [r.json()["data"] for r in lemonsqueezy.api_requests("POST", "/v1/checkouts")]
    assert len(created) == 1, created
    custom = created[0]["attributes"]["checkout_data"]["custom"]
    assert custom["scrawn_user_id"] == user
    assert custom["scrawn_checkout_id"] == link.rsplit("/", 1)[-1]
    assert created[0]["attributes"]["custom_price"] == 250

    answer = httpx.get(link, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"].startswith(f"{lemonsqueezy.base_url}/checkout/custom/"), answer.headers
