"""Events the server kept for repricing are *delivered*: ``track()``, the middleware, the AI paths and the
unary calls never retry them and never count them as dropped, and still hand them to ``on_error`` (as
:class:`~scrawn.errors.EventQuarantinedError`) so the application can log them.

The server answers (``KEPT_FOR_REPRICING`` stream failures, ``quarantined`` TrackEvents results, a
FAILED_PRECONDITION with an ``event.v1.EventQuarantined`` detail) are tested here as wire messages: parsed
directly, played by a loopback Connect server built on the standard library, and through the Tracker's
injectable sender."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import scrawn
from scrawn import ErrorContext, Scrawn, tag
from scrawn._connect import envelope, iter_envelopes, parse_stream, parse_unary
from scrawn._core import PreparedTypedEvent, typed_result
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet_pb
from scrawn._track import Tracker
from scrawn._track_send import ACCEPTED, ItemOutcome, stream_outcomes, typed_outcomes
from scrawn._tracked import AnyTracked, TrackedEvent
from scrawn.errors import (
    AlreadyExistsError,
    EventQuarantinedError,
    FailedPreconditionError,
    InsufficientCreditsError,
    InvalidArgumentError,
    ScrawnError,
    UnavailableError,
)
from scrawn.pricing import Debit
from tests.sdk.conftest import LIVE_SHAPED_KEY, _read_chunked, client_config

KEPT = "Event kept for repricing: basicUsage.tag: Tag not found: MISSING"


# ------------------------------------------------------------------------------------- wire parsing


def test_stream_failures_kept_for_repricing_are_quarantine_errors() -> None:
    response = ev.StreamEventResponse(
        eventsProcessed=3,
        eventsFailed=2,
        failures=[
            ev.EventFailure(eventIndex=1, idempotencyKey="k1", errorCode="KEPT_FOR_REPRICING", message=KEPT),
            ev.EventFailure(
                eventIndex=2,
                idempotencyKey="k2",
                errorCode="VALIDATION_FAILED",
                message="Event validation failed: userId: must be a non-empty string",
            ),
        ],
        quarantined=1,
    )
    ok, kept, bad = stream_outcomes(response, 3)
    assert ok is ACCEPTED
    assert isinstance(kept.error, EventQuarantinedError) and isinstance(kept.error, FailedPreconditionError)
    assert kept.error.code == "failed_precondition" and kept.error.field == "basicUsage.tag"
    assert kept.error.idempotency_key == "k1" and kept.error.message == KEPT
    assert type(bad.error) is InvalidArgumentError and bad.error.field == "userId"


def test_track_events_results_map_back_by_index() -> None:
    response = usage_pb.TrackEventsResponse(
        results=[
            usage_pb.TrackEventResult(index=3, status="duplicate", eventId="e3", idempotencyKey="k3"),
            usage_pb.TrackEventResult(
                index=1,
                status="quarantined",
                eventId="e1",
                idempotencyKey="k1",
                errorCode="KEPT_FOR_REPRICING",
                message="Event kept for repricing: eventPrice: Tag not found: PAGE",
            ),
            usage_pb.TrackEventResult(index=0, status="accepted", eventId="e0", amount="2"),
            usage_pb.TrackEventResult(
                index=2,
                status="failed",
                idempotencyKey="k2",
                errorCode="VALIDATION_FAILED",
                message="idempotencyKey: already used with different content",
            ),
        ],
        accepted=1,
        duplicates=1,
        failed=1,
        quarantined=1,
    )
    accepted, kept, failed, duplicate, missing = typed_outcomes(response, 5)
    assert accepted.error is None and not accepted.duplicate
    assert duplicate.error is None and duplicate.duplicate
    assert isinstance(kept.error, EventQuarantinedError)
    assert (kept.error.event_id, kept.error.idempotency_key, kept.error.field) == ("e1", "k1", "eventPrice")
    assert isinstance(failed.error, AlreadyExistsError) and failed.error.field == "idempotencyKey"
    assert missing.error is not None and missing.error.code == "internal"  # no answer for index 4


def test_an_items_field_is_read_from_the_wire_not_its_message() -> None:
    """The item's ``field`` wins over what its message names; an empty one (a server that predates it)
    falls back to the message."""
    stream = ev.StreamEventResponse(
        failures=[
            ev.EventFailure(eventIndex=0, errorCode="VALIDATION_FAILED", message="bad: x: y", field="userId"),
            ev.EventFailure(eventIndex=1, errorCode="VALIDATION_FAILED", message="Bad input: userId: y"),
        ]
    )
    from_wire, from_message = stream_outcomes(stream, 2)
    assert from_wire.error is not None and from_wire.error.field == "userId"
    assert from_message.error is not None and from_message.error.field == "userId"
    tracked = usage_pb.TrackEventsResponse(
        results=[
            usage_pb.TrackEventResult(index=0, status="failed", errorCode="INVALID_DATA", field="quantity"),
            usage_pb.TrackEventResult(
                index=1, status="quarantined", message="Event kept for repricing", field="eventPrice"
            ),
        ]
    )
    failed, kept = typed_outcomes(tracked, 2)
    assert failed.error is not None and failed.error.field == "quantity"
    assert isinstance(kept.error, EventQuarantinedError) and kept.error.field == "eventPrice"


def test_a_quarantined_status_is_a_quarantine_even_without_its_code() -> None:
    response = usage_pb.TrackEventsResponse(
        results=[usage_pb.TrackEventResult(index=0, status="quarantined", message="Event kept for repricing")]
    )
    [kept] = typed_outcomes(response, 1)
    assert isinstance(kept.error, EventQuarantinedError)
    event = PreparedTypedEvent("X", "u", "1", None, None, None, "key-1")
    with pytest.raises(EventQuarantinedError) as info:
        typed_result(response, event)
    assert info.value.idempotency_key == "key-1"


def _quarantine_body(*, detail: bool = True) -> bytes:
    kept = ev.EventQuarantined(
        eventId="6f1c4f5e-8d0a-4b55-9a43-3c2b1e0f9d11",
        idempotencyKey="order-7",
        field="basicUsage.tag",
        reason="Tag not found: MISSING",
    )
    error: dict[str, Any] = {"code": "failed_precondition", "message": KEPT}
    if detail:
        value = base64.b64encode(kept.SerializeToString()).decode().rstrip("=")
        error["details"] = [{"type": "event.v1.EventQuarantined", "value": value}]
    return json.dumps(error).encode()


def test_a_unary_failed_precondition_with_the_detail_is_a_quarantine_error() -> None:
    with pytest.raises(EventQuarantinedError) as info:
        parse_unary(400, {"content-type": "application/json"}, _quarantine_body(), ev.RegisterEventResponse)
    error = info.value
    assert error.code == "failed_precondition" and error.message == KEPT
    assert error.event_id == "6f1c4f5e-8d0a-4b55-9a43-3c2b1e0f9d11" and error.idempotency_key == "order-7"
    assert error.field == "basicUsage.tag"
    # Without the detail (a proxy that drops details): recognised by its message, fields unknown.
    with pytest.raises(EventQuarantinedError) as bare:
        parse_unary(400, {}, _quarantine_body(detail=False), ev.RegisterEventResponse)
    assert bare.value.event_id is None and bare.value.field == "basicUsage.tag"
    # At the end of a stream too.
    end = envelope(json.dumps({"error": json.loads(_quarantine_body())}).encode(), 0x02)
    with pytest.raises(EventQuarantinedError):
        parse_stream(200, {}, end, ev.StreamEventResponse)


def test_other_failed_preconditions_are_unchanged() -> None:
    funds = wallet_pb.InsufficientFunds(currentBalance="1", available="1", requestedAmount="5")
    body = json.dumps(
        {
            "code": "failed_precondition",
            "message": "Insufficient funds: amount: requested 5 but available is 1 (balance 1)",
            "details": [
                {
                    "type": "wallet.v1.InsufficientFunds",
                    "value": base64.b64encode(funds.SerializeToString()).decode(),
                }
            ],
        }
    ).encode()
    with pytest.raises(InsufficientCreditsError):
        parse_unary(400, {}, body, ev.RegisterEventResponse)
    plain = json.dumps({"code": "failed_precondition", "message": "nothing to pay"}).encode()
    with pytest.raises(FailedPreconditionError) as info:
        parse_unary(400, {}, plain, ev.RegisterEventResponse)
    assert type(info.value) is FailedPreconditionError


def test_the_error_is_exported() -> None:
    assert scrawn.EventQuarantinedError is EventQuarantinedError
    assert scrawn.errors.EventQuarantinedError is EventQuarantinedError


# ----------------------------------------------------------------------- the Tracker's sender seam


def _config(**options: Any) -> Any:
    return client_config(
        LIVE_SHAPED_KEY,
        "http://127.0.0.1:9",
        timeout=1,
        max_retries=2,
        on_error=options.pop("on_error", None),
        backoff_base=0.001,
        backoff_max=0.002,
        flush_interval=0.01,
        **options,
    )


def _event(n: int) -> TrackedEvent:
    return TrackedEvent(f"u{n}", Debit("tag", "MISSING"), None, f"k{n}", int(time.time()))


class FakeSender:
    """Answers every key in ``kept`` with KEPT_FOR_REPRICING, every key in ``refused`` with a permanent
    failure, the rest as stored; records every key sent."""

    def __init__(self, kept: set[str], refused: frozenset[str] = frozenset()) -> None:
        self.kept = kept
        self.refused = refused
        self.sent: list[str] = []

    def __call__(self, events: Sequence[AnyTracked]) -> list[ItemOutcome]:
        out = []
        for e in events:
            self.sent.append(e.idempotency_key)
            if e.idempotency_key in self.kept:
                failure = ev.EventFailure(errorCode="KEPT_FOR_REPRICING", message=KEPT)
                out.append(stream_outcomes(ev.StreamEventResponse(failures=[failure]), 1)[0])
            elif e.idempotency_key in self.refused:
                out.append(ItemOutcome(InvalidArgumentError("VALIDATION_FAILED: basicUsage.expr: bad")))
            else:
                out.append(ACCEPTED)
        return out


def test_kept_events_are_delivered_not_dropped_and_not_resent(caplog: pytest.LogCaptureFixture) -> None:
    sender = FakeSender(kept={f"k{n}" for n in range(1000)})
    with caplog.at_level(logging.WARNING, logger="scrawn.track"):
        tracker = Tracker(_config(batch_size=100), sender=sender)
        for n in range(1000):
            assert tracker.put(_event(n))
        assert tracker.flush(30) is True
        assert tracker.pending_count == 0 and tracker.dropped_count == 0
        tracker.close()
    assert sorted(sender.sent) == sorted(f"k{n}" for n in range(1000))  # each sent exactly once
    assert any("kept for repricing" in r.getMessage() for r in caplog.records)
    assert not any("failed for good" in r.getMessage() for r in caplog.records)


def test_on_error_sees_each_kept_event_and_its_retry_does_not_resend() -> None:
    seen: list[tuple[type[ScrawnError], str, str | None]] = []

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        seen.append((type(error), ctx.idempotency_key, error.field))
        ctx.retry()  # the app asks; a kept event must not be sent again

    sender = FakeSender(kept={"k1", "k3"}, refused=frozenset({"k4"}))
    tracker = Tracker(_config(on_error=on_error), sender=sender)
    for n in range(5):
        tracker.put(_event(n))
    assert tracker.flush(30) is False  # k4 is dropped in the end
    tracker.close()
    kept = [(cls, key) for cls, key, _ in seen if cls is EventQuarantinedError]
    assert kept == [(EventQuarantinedError, "k1"), (EventQuarantinedError, "k3")]
    assert all(f == "basicUsage.tag" for cls, _, f in seen if cls is EventQuarantinedError)
    assert sender.sent.count("k1") == 1 and sender.sent.count("k3") == 1
    # k4 was refused for good: retried on request (max_retries=2 grants), then dropped.
    assert sender.sent.count("k4") == 3
    assert tracker.dropped_count == 1 and tracker.pending_count == 0


def test_a_batch_of_kept_refused_and_stored_events_counts_only_the_refused_as_dropped() -> None:
    sender = FakeSender(kept={"k0", "k2"}, refused=frozenset({"k1"}))
    tracker = Tracker(_config(), sender=sender)
    for n in range(4):
        tracker.put(_event(n))
    assert tracker.flush(30) is False  # k1 was dropped since the tracker was made
    assert tracker.dropped_count == 1 and tracker.pending_count == 0
    assert tracker.flush(30) is True  # ... and nothing since
    tracker.close()
    assert sorted(sender.sent) == ["k0", "k1", "k2", "k3"]


def test_transient_failures_before_the_quarantine_answer_are_retried_then_delivered() -> None:
    calls: list[list[str]] = []

    def sender(events: Sequence[AnyTracked]) -> list[ItemOutcome]:
        calls.append([e.idempotency_key for e in events])
        if len(calls) < 3:
            raise UnavailableError("server restarting")
        failure = ev.EventFailure(eventIndex=0, errorCode="KEPT_FOR_REPRICING", message=KEPT)
        return stream_outcomes(ev.StreamEventResponse(failures=[failure]), len(events))

    tracker = Tracker(_config(), sender=sender)
    tracker.put(_event(0))
    tracker.put(_event(1))
    assert tracker.flush(30) is True and tracker.dropped_count == 0
    tracker.close()
    assert calls == [["k0", "k1"]] * 3


# --------------------------------------------------------------- a loopback Connect server that quarantines


@dataclass
class QuarantiningServer:
    """Answers every event it is sent as kept for repricing, in each RPC's own wire form."""

    requests: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""
    _httpd: ThreadingHTTPServer | None = None

    def keys(self, path_end: str) -> list[str]:
        """The idempotency keys of every item sent to the RPC ``path_end``, in order."""
        found: list[str] = []
        for path, body in self.requests:
            if not path.endswith(path_end):
                continue
            if path_end == "StreamEvents":
                found += [ev.StreamEventRequest.FromString(p).idempotencyKey for _, p in iter_envelopes(body)]
            elif path_end == "TrackEvents":
                found += [e.idempotencyKey for e in usage_pb.TrackEventsRequest.FromString(body).events]
            else:
                found.append(ev.RegisterEventRequest.FromString(body).idempotencyKey)
        return found

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else _read_chunked(self.rfile)
                owner.requests.append((self.path, body))
                if self.path.endswith("/StreamEvents"):
                    items = [ev.StreamEventRequest.FromString(p) for _, p in iter_envelopes(body)]
                    response = ev.StreamEventResponse(eventsProcessed=len(items), quarantined=len(items))
                    for i, item in enumerate(items):
                        field_ = "aiTokenUsage.model" if item.HasField("aiTokenUsage") else "basicUsage.tag"
                        response.failures.append(
                            ev.EventFailure(
                                eventIndex=i,
                                idempotencyKey=item.idempotencyKey,
                                errorCode="KEPT_FOR_REPRICING",
                                message=f"Event kept for repricing: {field_}: not priceable yet",
                            )
                        )
                    out = envelope(response.SerializeToString()) + envelope(b"{}", 0x02)
                    self._answer(200, "application/connect+proto", out)
                elif self.path.endswith("/TrackEvents"):
                    request = usage_pb.TrackEventsRequest.FromString(body)
                    answer = usage_pb.TrackEventsResponse(quarantined=len(request.events))
                    for i, item in enumerate(request.events):
                        answer.results.append(
                            usage_pb.TrackEventResult(
                                index=i,
                                status="quarantined",
                                eventId=str(uuid.uuid4()),
                                idempotencyKey=item.idempotencyKey,
                                errorCode="KEPT_FOR_REPRICING",
                                message="Event kept for repricing: eventPrice: Tag not found: PAGE",
                            )
                        )
                    self._answer(200, "application/proto", answer.SerializeToString())
                else:
                    self._answer(400, "application/json", _quarantine_body())

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


@pytest.fixture
def quarantining() -> Iterator[QuarantiningServer]:
    server = QuarantiningServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Hook:
    """An ``on_error`` that records what it saw and always asks for a retry."""

    def __init__(self) -> None:
        self.seen: list[tuple[EventQuarantinedError, str]] = []
        self.others: list[ScrawnError] = []

    def __call__(self, error: ScrawnError, ctx: ErrorContext) -> None:
        if isinstance(error, EventQuarantinedError):
            self.seen.append((error, ctx.operation))
        else:
            self.others.append(error)
        ctx.retry()


def test_track_of_both_kinds_through_the_wire(quarantining: QuarantiningServer) -> None:
    hook = Hook()
    with Scrawn(LIVE_SHAPED_KEY, quarantining.url, on_error=hook, batch_size=50) as client:
        for i in range(60):
            client.track(user_id="u", debit=tag("MISSING"), idempotency_key=f"d{i}")
            client.track(user_id="u", event_type="PAGE_VIEW", quantity=i, idempotency_key=f"t{i}")
        assert client.flush(30) is True
        assert client.pending_count == 0 and client.dropped_count == 0
    assert sorted(quarantining.keys("StreamEvents")) == sorted(f"d{i}" for i in range(60))  # once each
    assert sorted(quarantining.keys("TrackEvents")) == sorted(f"t{i}" for i in range(60))
    assert len(hook.seen) == 120 and not hook.others
    assert {op for _, op in hook.seen} == {"track"}
    typed = [e for e, _ in hook.seen if e.idempotency_key and e.idempotency_key.startswith("t")]
    assert len(typed) == 60 and all(e.event_id and e.field == "eventPrice" for e in typed)


def test_unary_calls_raise_it_or_hand_it_to_on_error_without_resending(
    quarantining: QuarantiningServer,
) -> None:
    with Scrawn(LIVE_SHAPED_KEY, quarantining.url) as client:
        with pytest.raises(EventQuarantinedError) as info:
            client.basic_usage_event_consumer(user_id="u", debit=tag("MISSING"), idempotency_key="order-7")
        assert info.value.event_id and info.value.idempotency_key == "order-7"
        hook = Hook()
        result = client.basic_usage_event_consumer(user_id="u", debit=1, idempotency_key="r1", on_error=hook)
        assert not result.ok and isinstance(result.error, EventQuarantinedError)
        typed = client.create_event(type="PAGE_VIEW", customer_ref="u", idempotency_key="c1", on_error=hook)
        assert isinstance(typed.error, EventQuarantinedError) and typed.error.idempotency_key == "c1"
        with pytest.raises(EventQuarantinedError):
            client.create_event(type="PAGE_VIEW", customer_ref="u", idempotency_key="c2")
    assert quarantining.keys("RegisterEvent") == ["order-7", "r1"]  # the hook's retry() sent nothing
    assert quarantining.keys("TrackEvents") == ["c1", "c2"]
    assert [op for _, op in hook.seen] == ["basic_usage_event_consumer", "create_event"]


async def test_async_unary_calls_do_not_resend_it(quarantining: QuarantiningServer) -> None:
    hook = Hook()
    async with scrawn.AsyncScrawn(LIVE_SHAPED_KEY, quarantining.url, on_error=hook) as client:
        result = await client.basic_usage_event_consumer(user_id="u", debit=1, idempotency_key="a1")
        assert isinstance(result.error, EventQuarantinedError)
        client.events.track(user_id="u", event_type="PAGE_VIEW", idempotency_key="a2")
        assert await client.events.flush(30) is True and client.events.dropped_count == 0
    assert quarantining.keys("RegisterEvent") == ["a1"] and quarantining.keys("TrackEvents") == ["a2"]
    assert len(hook.seen) == 2


async def test_the_middleware_counts_it_delivered(quarantining: QuarantiningServer) -> None:
    from scrawn.middleware import ScrawnASGIMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    hook = Hook()
    with Scrawn(LIVE_SHAPED_KEY, quarantining.url, on_error=hook) as client:
        billed = ScrawnASGIMiddleware(
            app,
            client=client,
            extractor=lambda scope: {"user_id": "u", "debit": tag("MISSING")},
            whitelist=["/api/**"],
            raw_request=True,
        )
        for path in ("/api/a", "/api/b/c", "/health"):
            await billed({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
        assert await asyncio.to_thread(client.flush, 30) is True
        assert client.dropped_count == 0
    assert len(quarantining.keys("StreamEvents")) == 2  # the whitelist left /health alone; none resent
    assert len(hook.seen) == 2 and not hook.others


def test_the_ai_paths_count_it_delivered(quarantining: QuarantiningServer) -> None:
    hook = Hook()
    with Scrawn(LIVE_SHAPED_KEY, quarantining.url, on_error=hook) as client:
        result = client.ai_token_stream_consumer(
            [{"input_tokens": 10, "output_tokens": 5}, {"input_tokens": 0, "output_tokens": 7}],
            user_id="u",
            model="my-unpriced-model",
        )
        assert result.ok and result.events_failed == 0 and result.events_processed == 2
        assert [q.code for q in result.quarantined] == ["KEPT_FOR_REPRICING"] * 2
        for i in range(5):
            assert client.track_ai(user_id="u", model="my-unpriced-model", input_tokens=i, output_tokens=1)
        assert client.flush(30) is True
        assert client.dropped_count == 0 and client.pending_count == 0
    sent = quarantining.keys("StreamEvents")
    assert len(sent) == 7 and len(set(sent)) == 7  # nothing resent despite retry() in the hook
    assert len(hook.seen) == 7 and {e.field for e, _ in hook.seen} == {"aiTokenUsage.model"}


def test_the_ai_stream_logs_it_without_a_hook(
    quarantining: QuarantiningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="scrawn"),
        Scrawn(LIVE_SHAPED_KEY, quarantining.url) as client,
    ):
        result = client.ai_token_stream_consumer(
            [{"input_tokens": 1, "output_tokens": 1}], user_id="u", model="m"
        )
    assert result.ok and len(result.quarantined) == 1
    assert any("kept for repricing" in r.getMessage() for r in caplog.records)
