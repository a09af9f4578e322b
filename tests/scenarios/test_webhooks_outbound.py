"""Outbound webhooks against real servers (SQLite and PostgreSQL) and a real local HTTP endpoint: retried
with backoff until delivered, across a restart, always under one webhook-id; replay; exhaustion; the API."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrawn import WebhookVerificationError, verify_webhook
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import WALLET, ConnectClient, bearer
from tests.conftest import ServerHandle, make_server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A loopback webhook endpoint: answers 500 to the first ``failures`` requests, then 200."""

    failures: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def ok(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answered == 200]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with state.lock:
                answer = 500 if state.failures > 0 else 200
                state.failures = max(0, state.failures - 1)
                state.received.append(Received(dict(self.headers.items()), body, answer))
            self.send_response(answer)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def start_server(database_url: str, data_dir: Path, schedule: str) -> ServerHandle:
    handle = make_server(database_url, data_dir)
    handle.env["SCRAWN_WEBHOOK_RETRY_SCHEDULE"] = schedule
    handle.start()
    return handle


@pytest.fixture
def start(database_url: str, tmp_path: Path) -> Iterator[Callable[[str], ServerHandle]]:
    started: list[ServerHandle] = []

    def run(schedule: str) -> ServerHandle:
        started.append(start_server(database_url, tmp_path, schedule))
        return started[-1]

    yield run
    for handle in started:
        handle.stop()


def api(server: ServerHandle, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {server.dash_key}"}
    return httpx.request(method, server.base_url + path, headers=headers, timeout=30, **kwargs)


def set_endpoint(server: ServerHandle, url: str, **extra: Any) -> dict[str, Any]:
    res = api(server, "PUT", "/api/v1/webhooks/endpoint?mode=live", json={"url": url, **extra})
    assert res.status_code in (200, 201), res.text
    body: dict[str, Any] = res.json()
    return body


def wallet(server: ServerHandle, method: str, request: Any) -> Any:
    with ConnectClient(server.base_url) as c:
        return c.unary(WALLET + method, request, bearer(server.live_key))


def go_low(server: ServerHandle, user: str) -> None:
    """Credit 10, warn below 5, debit 6: one balance.low crossing."""
    wallet(server, "Credit", w.CreditRequest(userId=user, amount="10", idempotencyKey=str(uuid.uuid4())))
    wallet(server, "UpdateUserSettings", w.UpdateUserSettingsRequest(userId=user, lowBalanceThreshold="5"))
    wallet(server, "Debit", w.DebitRequest(userId=user, amount="6", idempotencyKey=str(uuid.uuid4())))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def messages(server: ServerHandle, **params: Any) -> list[dict[str, Any]]:
    res = api(server, "GET", "/api/v1/webhooks/messages", params={"mode": "live", **params})
    assert res.status_code == 200, res.text
    found: list[dict[str, Any]] = res.json()["messages"]
    return found


def message(server: ServerHandle, message_id: str) -> dict[str, Any]:
    return next(m for m in messages(server) if m["id"] == message_id)


def attempts(server: ServerHandle, message_id: str) -> list[dict[str, Any]]:
    res = api(server, "GET", f"/api/v1/webhooks/messages/{message_id}/attempts", params={"mode": "live"})
    assert res.status_code == 200, res.text
    found: list[dict[str, Any]] = res.json()["attempts"]
    return found


def of_type(receiver: Receiver, type_: str) -> list[Received]:
    return [r for r in receiver.all() if f'"type":"{type_}"'.encode() in r.body]


def test_a_failing_endpoint_gets_retries_with_backoff_under_one_id(
    start: Callable[[str], ServerHandle], receiver: Receiver
) -> None:
    server = start("1,1,1,1,1,1")
    endpoint = set_endpoint(server, receiver.url)
    secret, public_key = endpoint["secret"], endpoint["publicKey"]
    assert secret.startswith("whsec_") and public_key.startswith("whpk_")
    receiver.failures = 2

    go_low(server, "low-1")
    wait_for("a delivery", receiver.ok)
    sent = of_type(receiver, "balance.low")
    assert [r.answered for r in sent] == [500, 500, 200]
    ids = {r.headers["webhook-id"] for r in sent}
    assert len(ids) == 1 and {r.body for r in sent} == {sent[0].body}  # one event, never two
    for r in sent:
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"].startswith("Scrawn-Webhooks")
        for key in (secret, public_key):  # v1 (HMAC) and v1a (Ed25519) side by side
            event = verify_webhook(r.body, r.headers, key)
        assert event.type == "balance.low" and event.id in ids
        assert event.data == {
            "mode": "live",
            "userId": "low-1",
            "threshold": "5",
            "balance": "4",
            "available": "4",
        }
    with pytest.raises(WebhookVerificationError):
        verify_webhook(sent[-1].body.replace(b'"4"', b'"40"'), sent[-1].headers, secret)

    (msg_id,) = ids
    delivered = wait_for("delivered", lambda: message(server, msg_id)["status"] == "delivered")
    assert delivered
    found = message(server, msg_id)
    assert found["attempts"] == 3 and found["deliveredAt"] and found["nextAttemptAt"] is None
    assert [m["id"] for m in messages(server) if m["type"] == "balance.low"] == [msg_id]
    log = attempts(server, msg_id)
    assert [(a["attempt"], a["statusCode"], a["url"]) for a in log] == [
        (1, 500, receiver.url),
        (2, 500, receiver.url),
        (3, 200, receiver.url),
    ]
    assert log[0]["error"] == "HTTP 500" and log[2]["error"] is None
    # Backoff: each retry waited at least its scheduled second after the failure before it.
    stamps = [int(r.headers["webhook-timestamp"]) for r in sent]
    assert stamps[1] - stamps[0] >= 1 and stamps[2] - stamps[1] >= 1

    # reservation.expired, from the expiry sweeper's transaction
    wallet(server, "Credit", w.CreditRequest(userId="hold-1", amount="10", idempotencyKey=str(uuid.uuid4())))
    hold = wallet(
        server,
        "CreateReservation",
        w.CreateReservationRequest(
            userId="hold-1", amount="2.5", idempotencyKey=str(uuid.uuid4()), ttlSeconds=1
        ),
    )
    got = wait_for("reservation.expired", lambda: [r for r in of_type(receiver, "reservation.expired")])
    event = verify_webhook(got[0].body, got[0].headers, secret)
    assert event.data["reservationId"] == hold.id and event.data["userId"] == "hold-1"
    assert event.data["amount"] == "2.5" and event.data["expiresAt"].endswith("Z")


def test_delivery_survives_a_restart_and_replay_keeps_the_id(
    start: Callable[[str], ServerHandle], receiver: Receiver
) -> None:
    server = start("1,1,1,1,1,1,1,1,1,1")
    secret = set_endpoint(server, receiver.url)["secret"]
    receiver.failures = 1_000_000
    go_low(server, "low-2")
    wait_for("two failed attempts", lambda: len(receiver.all()) >= 2)
    server.stop()

    with receiver.lock:
        receiver.failures = 0
    server.start()
    ok = wait_for("a delivery after the restart", receiver.ok)
    assert len(ok) == 1
    sent = receiver.all()
    assert len({r.headers["webhook-id"] for r in sent}) == 1 and {r.body for r in sent} == {sent[0].body}
    msg_id = sent[0].headers["webhook-id"]
    wait_for("delivered", lambda: message(server, msg_id)["status"] == "delivered")
    before = message(server, msg_id)["attempts"]
    assert before == len(sent) == len(attempts(server, msg_id))

    # Replay from the CLI: the same id and body again (a receiver deduping on webhook-id ignores it).
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrawn.server.cli",
            "webhooks",
            "replay",
            msg_id,
            "--project",
            server.project_id,
        ],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert msg_id in out.stdout
    again = wait_for("the replay", lambda: len(receiver.ok()) == 2 and receiver.ok())
    assert again[-1].headers["webhook-id"] == msg_id and again[-1].body == sent[0].body
    assert verify_webhook(again[-1].body, again[-1].headers, secret).id == msg_id
    wait_for("delivered again", lambda: message(server, msg_id)["attempts"] == before + 1)
    assert message(server, msg_id)["status"] == "delivered"

    missing = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "webhooks", "replay", "msg_nope"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_an_exhausted_schedule_marks_the_message_failed(
    start: Callable[[str], ServerHandle], receiver: Receiver
) -> None:
    server = start("1,1")
    set_endpoint(server, receiver.url)
    receiver.failures = 1_000_000
    go_low(server, "low-3")
    (found,) = wait_for("failed", lambda: messages(server, status="failed"))
    assert found["attempts"] == 3 and found["nextAttemptAt"] is None and found["lastError"] == "HTTP 500"
    assert [a["statusCode"] for a in attempts(server, found["id"])] == [500, 500, 500]
    assert len({r.headers["webhook-id"] for r in receiver.all()}) == 1

    # A replay after the endpoint is fixed delivers it (one more attempt, same id).
    with receiver.lock:
        receiver.failures = 0
    res = api(server, "POST", f"/api/v1/webhooks/messages/{found['id']}/replay?mode=live")
    assert res.status_code == 200 and res.json()["status"] == "pending"
    wait_for("delivered", lambda: message(server, found["id"])["status"] == "delivered")
    assert message(server, found["id"])["attempts"] == 4


def test_endpoint_management(server: ServerHandle, receiver: Receiver) -> None:
    path = "/api/v1/webhooks/endpoint"
    assert api(server, "GET", path).status_code == 404
    bad = api(server, "PUT", path, json={"url": "ftp://example.com/x"})
    assert bad.status_code == 400 and bad.json()["field"] == "url"
    assert api(server, "PUT", path, json={"url": "https://" + "a" * 2048}).json()["field"] == "url"
    nul = api(server, "PUT", path, json={"url": "https://example.com/\x00"})  # PostgreSQL text holds no NUL
    assert nul.status_code == 400 and nul.json()["field"] == "url", nul.text
    assert api(server, "PUT", path, json={"url": receiver.url, "rotate": "yes"}).json()["field"] == "rotate"
    refused = httpx.get(
        server.base_url + path, headers={"authorization": f"Bearer {server.live_key}"}, timeout=30
    )
    assert refused.status_code == 403

    created = api(server, "PUT", path, json={"url": receiver.url})
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    shown = api(server, "GET", path).json()
    assert shown["url"] == receiver.url and "secret" not in shown
    assert shown["publicKey"] == created.json()["publicKey"]
    assert api(server, "GET", path + "?reveal=true").json()["secret"] == created.json()["secret"]

    moved = api(server, "PUT", path, json={"url": receiver.url + "/v2"})
    assert moved.status_code == 200 and "secret" not in moved.json()
    kept = api(server, "GET", path + "?reveal=true").json()
    assert (kept["secret"], kept["publicKey"]) == (created.json()["secret"], created.json()["publicKey"])
    rotated = api(server, "PUT", path, json={"url": receiver.url, "rotate": True}).json()
    assert rotated["secret"] != kept["secret"] and rotated["publicKey"] != kept["publicKey"]
    assert api(server, "GET", path + "?mode=test").status_code == 404  # modes are separate

    assert api(server, "DELETE", path).status_code == 204
    assert api(server, "DELETE", path).status_code == 404
    go_low(server, "no-endpoint")  # nothing is queued without an endpoint
    assert messages(server) == []
    assert api(server, "POST", "/api/v1/webhooks/messages/msg_nope/replay").status_code == 404
    assert api(server, "GET", "/api/v1/webhooks/messages?limit=0").json()["field"] == "limit"
