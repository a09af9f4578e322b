"""``track()``: non-blocking, batched through the background worker, exactly once, bounded, with failures
reported to ``on_error`` — against a real server, plus the worker's rules with a scripted sender."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, ErrorContext, Scrawn, mul, tag
from scrawn._track import Tracker
from scrawn._track_send import ACCEPTED, ItemOutcome
from scrawn._tracked import TrackedEvent
from scrawn.errors import EventQuarantinedError, InvalidArgumentError, ScrawnError, UnavailableError
from tests.sdk.conftest import (
    LIVE_SHAPED_KEY,
    FlakyServer,
    balances_of,
    client_config,
    put_tag,
    stored_events,
)


def test_ten_thousand_calls_from_eight_threads_arrive_exactly_once(module_server: Any) -> None:
    p = f"trk-{uuid.uuid4().hex[:8]}-"
    per_thread, threads = 1250, 8
    accepted = [0] * threads
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        barrier = threading.Barrier(threads)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                accepted[t] += client.track(user_id=f"{p}{t}", debit=1 + i % 3)

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        assert client.flush(timeout=120) is True
        assert client.pending_count == 0 and client.dropped_count == 0
    assert sum(accepted) == threads * per_thread
    rows = stored_events(module_server, user_prefix=p)
    assert len(rows) == 10_000 and len({r.idempotency_key for r in rows}) == 10_000
    per_user = sum(Decimal(1 + i % 3) for i in range(per_thread))
    assert {r.user_id for r in rows} == {f"{p}{t}" for t in range(threads)}
    assert balances_of(module_server, user_prefix=p) == {f"{p}{t}": -per_user for t in range(threads)}


def test_track_stores_what_was_tracked(module_server: Any) -> None:
    put_tag(module_server, "TRK_UNIT", "0.25")
    p = f"trk-{uuid.uuid4().hex[:8]}-"
    before = int(time.time())
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        assert client.track(user_id=p + "a", debit=0.1, metadata={"k": "v"}, idempotency_key=p + "k1")
        assert client.track(user_id=p + "a", debit=mul(tag("TRK_UNIT"), 4))
        assert client._track_usage(p + "b", 2, None, "MIDDLEWARE_CALL")
        assert client.flush(30)
    rows = {r.user_id + str(r.debit): r for r in stored_events(module_server, user_prefix=p)}
    assert set(rows) == {p + "a0.1", p + "a1", p + "b2"}
    first = rows[p + "a0.1"]
    assert first.idempotency_key == p + "k1" and first.metadata == '{"k":"v"}'
    assert before <= first.reported_at <= int(time.time())
    assert rows[p + "b2"].basic_usage_type == "MIDDLEWARE_CALL"


async def test_track_from_async_code(module_server: Any) -> None:
    p = f"trk-{uuid.uuid4().hex[:8]}-"
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as client:
        start = time.perf_counter()
        for i in range(500):
            assert client.track(user_id=p + "u", debit=i % 2)  # not awaited: it never blocks
        assert time.perf_counter() - start < 1.0
        assert await client.flush(timeout=30)
        assert client.pending_count == 0
    rows = await asyncio.to_thread(stored_events, module_server, user_prefix=p)
    assert len(rows) == 500 and sum(r.debit for r in rows) == 250


def test_failed_items_are_reported_and_retry_on_request(module_server: Any, flaky: FlakyServer) -> None:
    """A batch refused for good is reported item by item; ``context.retry()`` sends an item once more (and
    this time the call gets through)."""
    p = f"trk-{uuid.uuid4().hex[:8]}-"
    flaky.script = ["invalid_argument"]  # the first call is refused; later ones reach the server
    reports: list[tuple[ScrawnError, str, int]] = []

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        reports.append((error, ctx.operation, ctx.retry_count))
        if ctx.idempotency_key == p + "again":
            assert ctx.retry()

    with Scrawn(module_server.live_key, flaky.url, on_error=on_error, backoff_base=0.01) as client:
        client.track(user_id=p + "gone", debit=1, idempotency_key=p + "gone")
        client.track(user_id=p + "again", debit=3, idempotency_key=p + "again")
        assert client.flush(30) is False  # "gone" was not retried: dropped
        assert client.pending_count == 0 and client.dropped_count == 1
    assert [(type(e), op, n) for e, op, n in reports] == [(InvalidArgumentError, "track", 0)] * 2
    assert reports[0][0].field == "userId"
    rows = {r.user_id: r.debit for r in stored_events(module_server, user_prefix=p)}
    assert rows == {p + "again": Decimal(3)}


def test_failures_without_a_hook_are_logged_and_settled(
    module_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="scrawn"),
        Scrawn(LIVE_SHAPED_KEY, module_server.base_url) as client,
    ):
        client.track(user_id="nobody", debit=1)
        assert client.flush(30) is False  # settled, but dropped: failed for good
        assert client.pending_count == 0 and client.dropped_count == 1
        assert client.flush(30) is True  # nothing dropped since the previous flush
    assert any(
        "failed for good" in r.getMessage() and "API key not found" in r.getMessage() for r in caplog.records
    )


def test_full_buffer_drops_counts_and_warns_once_per_burst(
    closed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scrawn.track"):
        client = Scrawn(LIVE_SHAPED_KEY, closed_url, buffer_size=10, batch_size=100, flush_interval=60)
        results = [client.track(user_id="u", debit=1) for _ in range(25)]
        assert results == [True] * 10 + [False] * 15
        assert client.dropped_count == 15 and client.pending_count == 10
        assert client.close(timeout=0.2) is False  # the server is unreachable: nothing delivered
        assert client.dropped_count == 25 and client.pending_count == 0  # no spool: the 10 are lost too
    warnings = [r.getMessage() for r in caplog.records if "buffer is full" in r.getMessage()]
    assert len(warnings) == 1
    assert any("not delivered (lost)" in r.getMessage() for r in caplog.records)


def test_track_after_close_raises(module_server: Any) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url)
    client.track(user_id="closing", debit=0)
    client.close()
    with pytest.raises(RuntimeError):
        client.track(user_id="closing", debit=0)


# ------------------------------------------------------------------ the worker's rules, scripted sender


def _config(**options: Any) -> Any:
    return client_config(
        LIVE_SHAPED_KEY,
        "http://127.0.0.1:9",
        timeout=1,
        max_retries=2,
        on_error=None,
        backoff_base=0.001,
        backoff_max=0.002,
        flush_interval=0.01,
        **options,
    )


def _event(n: int) -> TrackedEvent:
    from scrawn.pricing import Debit

    return TrackedEvent(f"u{n}", Debit("amount", n), None, f"k{n}", int(time.time()))


class ScriptedSender:
    """Answers batches from a script of per-key outcomes or whole-call errors; records every batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.call_errors: list[ScrawnError] = []
        self.item_errors: dict[str, list[ScrawnError]] = {}

    def __call__(self, events: Sequence[TrackedEvent]) -> list[ItemOutcome]:
        self.batches.append([e.idempotency_key for e in events])
        if self.call_errors:
            raise self.call_errors.pop(0)
        out = []
        for e in events:
            errors = self.item_errors.get(e.idempotency_key)
            out.append(ItemOutcome(errors.pop(0)) if errors else ACCEPTED)
        return out


def test_worker_retries_transient_item_failures_a_bounded_number_of_times() -> None:
    sender = ScriptedSender()
    sender.item_errors["k1"] = [UnavailableError("STORAGE_FAILURE: later")]  # succeeds on the 2nd try
    sender.item_errors["k2"] = [UnavailableError("STORAGE_FAILURE: x")] * 5  # never succeeds
    tracker = Tracker(_config(), sender=sender)
    for n in range(4):
        tracker.put(_event(n))
    assert tracker.flush(10) is False  # k2 was dropped
    assert tracker.pending_count == 0 and tracker.dropped_count == 1
    sent = [k for batch in sender.batches for k in batch]
    assert sent.count("k0") == 1 and sent.count("k1") == 2
    assert sent.count("k2") == 3  # the first attempt and max_retries=2 more, then given up
    tracker.close()


def test_worker_retries_whole_call_outages_until_they_end() -> None:
    sender = ScriptedSender()
    sender.call_errors = [UnavailableError("down")] * 5
    tracker = Tracker(_config(), sender=sender)
    for n in range(3):
        tracker.put(_event(n))
    assert tracker.flush(10)
    assert len(sender.batches) == 6 and all(b == ["k0", "k1", "k2"] for b in sender.batches)
    tracker.close()


def test_non_retryable_call_failures_settle_every_item_through_on_error() -> None:
    seen: list[str] = []
    sender = ScriptedSender()
    sender.call_errors = [InvalidArgumentError("bad batch")]
    config = _config()
    config = type(config)(**{**config.__dict__, "on_error": lambda e, ctx: seen.append(ctx.idempotency_key)})
    tracker = Tracker(config, sender=sender)
    for n in range(3):
        tracker.put(_event(n))
    assert tracker.flush(10) is False  # reported and not retried: dropped
    assert tracker.pending_count == 0 and tracker.dropped_count == 3
    assert seen == ["k0", "k1", "k2"]
    tracker.close()


def test_flush_waits_for_requeued_items_tracked_before_it() -> None:
    gate = threading.Event()
    sender = ScriptedSender()
    sender.item_errors["k0"] = [UnavailableError("STORAGE_FAILURE")]

    def slow(events: Sequence[TrackedEvent]) -> list[ItemOutcome]:
        gate.wait(5)
        return sender(events)

    tracker = Tracker(_config(batch_size=1), sender=slow)
    tracker.put(_event(0))
    tracker.put(_event(1))
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(tracker.flush(10)))
    waiter.start()
    time.sleep(0.05)
    assert not done  # k0 is in flight
    gate.set()
    waiter.join()
    assert done == [True] and tracker.pending_count == 0
    assert [k for b in sender.batches for k in b].count("k0") == 2
    tracker.close()


async def test_async_on_error_for_tracked_events_runs_on_the_loop(module_server: Any) -> None:
    loop = asyncio.get_running_loop()
    seen: list[tuple[type[ScrawnError], str | None, bool]] = []

    async def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        await asyncio.sleep(0)
        seen.append((type(error), error.field, asyncio.get_running_loop() is loop))

    async with AsyncScrawn(module_server.live_key, module_server.base_url, on_error=on_error) as client:
        client.track(user_id="trk-async-hook", debit=tag("TRK_NEVER_DEFINED"))
        assert await client.flush(30) is True  # kept for repricing: delivered, and reported
        assert client.pending_count == 0 and client.dropped_count == 0
    assert seen == [(EventQuarantinedError, "basicUsage.tag", True)]


def test_flush_and_close_inside_on_error_do_not_deadlock() -> None:
    sender = ScriptedSender()
    sender.item_errors["k0"] = [InvalidArgumentError("nope")]
    answers: list[bool] = []
    tracker: Tracker

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        answers.append(tracker.flush(5))
        answers.append(tracker.close(5))

    config = _config()
    config = type(config)(**{**config.__dict__, "on_error": on_error})
    tracker = Tracker(config, sender=sender)
    tracker.put(_event(0))
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answers == [False, False]
    tracker.close(1)


def test_tracked_events_are_flushed_at_interpreter_exit(module_server: Any) -> None:
    import subprocess
    import sys

    p = f"trk-{uuid.uuid4().hex[:8]}-"
    code = (
        "import sys\nfrom scrawn import Scrawn\n"
        "client = Scrawn(sys.argv[1], sys.argv[2], flush_interval=60)\n"
        "for i in range(300):\n    client.track(user_id=sys.argv[3] + str(i % 3), debit=1)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, module_server.live_key, module_server.base_url, p],
        check=True,
        timeout=60,
    )
    assert len(stored_events(module_server, user_prefix=p)) == 300
