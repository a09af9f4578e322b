"""The webhook services on both databases with a real receiver on loopback: endpoints sealed at rest, the
outbox written only where an endpoint exists, the deliverer signing and sending each message, backing off,
giving up after its schedule, and a replay sending the same message again under the same id."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from scrawn import verify_webhook
from scrawn.errors import NotFoundError
from scrawn.server.clock import now_ms
from scrawn.server.db.engine import Database
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages, outbox, repository
from scrawn.server.webhooks.deliverer import MAX_RESPONSE, WebhookDeliverer
from scrawn.server.webhooks.types import OutboxMessage
from tests.conftest import SECRET
from tests.server.fresh import Fresh

MODE = "live"
BOX = SecretBox(SECRET)


class Receiver:
    """A receiver that answers every delivery with ``status`` and ``body`` and records what it got."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.close()


async def until(
    db: Database, project_id: str, message_id: str, done: Callable[[OutboxMessage], bool]
) -> OutboxMessage:
    deadline = time.monotonic() + 20
    while True:
        async with db.read() as conn:
            found = await messages.get_message(conn, project_id, MODE, message_id)
        if done(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_endpoints_are_sealed_rotated_and_removed(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        first, created = await endpoints.put(conn, BOX, project_id, MODE, "https://a.example/hooks")
        again, created_again = await endpoints.put(conn, BOX, project_id, MODE, "https://b.example/hooks")
        assert created and not created_again
        assert (again.secret, again.signing_key, again.created_at) == (
            first.secret,
            first.signing_key,
            first.created_at,
        )
        assert await endpoints.get(conn, BOX, project_id, MODE) == again
        sealed = await repository.endpoint(conn, project_id, MODE)
        assert sealed is not None and first.secret.startswith("whsec_")
        assert first.secret not in sealed.secret and first.signing_key not in sealed.signing_key
        rotated, _ = await endpoints.put(conn, BOX, project_id, MODE, "https://b.example/hooks", rotate=True)
        assert rotated.secret != first.secret and rotated.public_key != first.public_key
        await endpoints.remove(conn, project_id, MODE)
        with pytest.raises(NotFoundError):
            await endpoints.remove(conn, project_id, MODE)


async def test_messages_are_queued_only_for_an_endpoint_and_delivered_signed(
    fresh: Fresh, receiver: Receiver
) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        assert await outbox.enqueue(conn, project_id, MODE, "balance.low", {"userId": "ann"}) is None
        endpoint, _ = await endpoints.put(conn, BOX, project_id, MODE, receiver.url)
        message_id = await outbox.enqueue(conn, project_id, MODE, "balance.low", {"userId": "ann"})
    assert message_id is not None
    deliverer = WebhookDeliverer(db, BOX, [1], interval=0.05)
    deliverer.start()
    try:
        sent = await until(db, project_id, message_id, lambda m: m.status == "delivered")
    finally:
        await deliverer.close()
    assert (sent.attempts, sent.next_attempt_at, sent.last_error) == (1, None, None)
    ((headers, body),) = receiver.received
    event = verify_webhook(body, headers, endpoint.secret)
    assert headers["webhook-id"] == message_id and event.type == "balance.low"
    assert event.data == {"mode": MODE, "userId": "ann"}
    async with db.read() as conn:
        (attempt,) = await messages.attempts_of(conn, project_id, MODE, message_id)
    assert (attempt.attempt, attempt.status_code, attempt.url) == (1, 200, receiver.url)
    assert attempt.response_body == ""  # an empty answer


async def test_an_attempt_keeps_the_start_of_the_response_body(fresh: Fresh, receiver: Receiver) -> None:
    db, project_id = fresh.db, fresh.project_id
    receiver.status = 503
    receiver.body = b'{"error": "down for maintenance \x00"} \xff' + "é".encode() * 600  # > 1 KiB, bad UTF-8
    async with db.write() as conn:
        await endpoints.put(conn, BOX, project_id, MODE, receiver.url)
        message_id = await outbox.enqueue(conn, project_id, MODE, "balance.low", {"userId": "ann"})
    assert message_id is not None
    deliverer = WebhookDeliverer(db, BOX, [60], interval=0.05)
    deliverer.start()
    try:
        await until(db, project_id, message_id, lambda m: m.attempts >= 1)
    finally:
        await deliverer.close()
    async with db.read() as conn:
        (attempt,) = await messages.attempts_of(conn, project_id, MODE, message_id)
    kept = receiver.body[:MAX_RESPONSE].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    assert (attempt.status_code, attempt.error, attempt.response_body) == (503, "HTTP 503", kept)
    assert kept.startswith('{"error": "down for maintenance \ufffd"} \ufffdé') and len(kept) < 1024


async def test_a_failing_receiver_backs_off_gives_up_and_a_replay_sends_again(
    fresh: Fresh, receiver: Receiver
) -> None:
    db, project_id = fresh.db, fresh.project_id
    receiver.status = 500
    async with db.write() as conn:
        await endpoints.put(conn, BOX, project_id, MODE, receiver.url)
        message_id = await outbox.enqueue(conn, project_id, MODE, "reservation.expired", {"userId": "bob"})
    assert message_id is not None
    deliverer = WebhookDeliverer(db, BOX, [1], interval=0.05)  # one retry, a second later
    deliverer.start()
    try:
        started = now_ms()
        backing_off = await until(db, project_id, message_id, lambda m: m.attempts >= 1)
        assert backing_off.status == "pending" and backing_off.last_error == "HTTP 500"
        assert backing_off.next_attempt_at is not None
        assert started + 1000 <= backing_off.next_attempt_at <= now_ms() + 1100  # the schedule, jittered
        failed = await until(db, project_id, message_id, lambda m: m.status == "failed")
        assert (failed.attempts, failed.next_attempt_at) == (2, None)  # dead-lettered

        receiver.status = 204
        async with db.write() as conn:
            replayed = await messages.replay(conn, project_id, MODE, message_id)
        assert replayed.status == "pending" and replayed.attempts == 2
        delivered = await until(db, project_id, message_id, lambda m: m.status == "delivered")
    finally:
        await deliverer.close()
    assert delivered.attempts == 3
    assert {h["webhook-id"] for h, _ in receiver.received} == {message_id}  # the same id every time
    async with db.read() as conn:
        log = await messages.attempts_of(conn, project_id, MODE, message_id)
        with pytest.raises(NotFoundError):
            await messages.replay(conn, project_id, MODE, "msg_missing")
    assert [(a.attempt, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 204)]
