"""Retries against a loopback server that fails on command, then forwards to a real ``scrawn serve``:
one attempt per request, the same idempotency key every time, the event billed once; errors that are
not retryable raise at once; ``on_error`` and ``context.retry()``."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, ErrorContext, Scrawn
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn.errors import (
    ConnectionFailedError,
    InvalidArgumentError,
    PermissionDeniedError,
    RequestTimeoutError,
    ResourceExhaustedError,
    ScrawnError,
    UnavailableError,
)
from tests.sdk.conftest import FlakyServer, balances_of, stored_events

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
# A call's timeout, and how long a "slow" answer takes: far apart, so that a busy machine neither times out a
# healthy call nor answers a slow one in time.
TIMEOUT, SLOW = 3.0, 8.0


def keys_sent(flaky: FlakyServer) -> list[str]:
    out = []
    for a in flaky.attempts:
        if a.path.endswith("RegisterEvent"):
            out.append(ev.RegisterEventRequest.FromString(a.body).idempotencyKey)
        else:
            out.append(usage.TrackEventsRequest.FromString(a.body).events[0].idempotencyKey)
    return out


def _billed_once(server: Any, user: str, amount: Decimal) -> None:
    rows = stored_events(server, user_prefix=user)
    assert len(rows) == 1 and rows[0].debit == amount
    assert balances_of(server, user_prefix=user) == {user: -amount}


@pytest.mark.parametrize(
    "failures", [["unavailable"] * 3, ["resource_exhausted", "http502", "drop"], ["slow", "unavailable"]]
)
def test_retryable_failures_are_retried_with_one_key_sync(
    module_server: Any, flaky: FlakyServer, failures: list[str]
) -> None:
    user = f"retry-{uuid.uuid4().hex}"
    flaky.script = list(failures)
    flaky.slow_seconds = SLOW
    with Scrawn(module_server.live_key, flaky.url, max_retries=3, timeout=TIMEOUT, **FAST) as client:
        result = client.basic_usage_event_consumer(user_id=user, debit=9)
    assert len(flaky.attempts) == len(failures) + 1
    sent = keys_sent(flaky)
    assert set(sent) == {result.idempotency_key}
    assert all(a.headers["authorization"] == f"Bearer {module_server.live_key}" for a in flaky.attempts)
    # "slow" stored the event before the client gave up: the retry is answered as a duplicate.
    assert result.duplicate == ("slow" in failures)
    _billed_once(module_server, user, Decimal(9))


async def test_retryable_failures_are_retried_with_one_key_async(
    module_server: Any, flaky: FlakyServer
) -> None:
    user = f"retry-{uuid.uuid4().hex}"
    flaky.script = ["unavailable", "drop", "slow"]
    flaky.slow_seconds = SLOW
    async with AsyncScrawn(module_server.live_key, flaky.url, timeout=TIMEOUT, **FAST) as client:
        result = await client.basic_usage_event_consumer(user_id=user, debit="1.5")
    assert len(flaky.attempts) == 4 and set(keys_sent(flaky)) == {result.idempotency_key}
    assert result.duplicate
    await asyncio.to_thread(_billed_once, module_server, user, Decimal("1.5"))


def test_create_event_retries_with_one_key(module_server: Any, flaky: FlakyServer) -> None:
    user = f"retry-{uuid.uuid4().hex}"
    flaky.script = ["unavailable", "slow"]
    flaky.slow_seconds = SLOW
    with Scrawn(module_server.live_key, flaky.url, timeout=TIMEOUT, **FAST) as client:
        result = client.create_event(type="retry.kind", customer_ref=user)
    assert len(flaky.attempts) == 3 and set(keys_sent(flaky)) == {result.idempotency_key}
    assert result.duplicate and len(stored_events(module_server, user_prefix=user)) == 1


@pytest.mark.parametrize(
    ("failure", "error_type", "field"),
    [
        ("invalid_argument", InvalidArgumentError, "userId"),
        ("permission_denied", PermissionDeniedError, None),
    ],
)
def test_errors_that_are_not_retryable_raise_at_once(
    module_server: Any, flaky: FlakyServer, failure: str, error_type: type[ScrawnError], field: str | None
) -> None:
    flaky.script = [failure] * 5
    with (
        Scrawn(module_server.live_key, flaky.url, max_retries=5, **FAST) as client,
        pytest.raises(error_type) as raised,
    ):
        client.basic_usage_event_consumer(user_id="never", debit=1)
    assert len(flaky.attempts) == 1
    assert raised.value.code == failure and raised.value.field == field


async def test_errors_that_are_not_retryable_raise_at_once_async(
    module_server: Any, flaky: FlakyServer
) -> None:
    flaky.script = ["invalid_argument"] * 5
    async with AsyncScrawn(module_server.live_key, flaky.url, max_retries=5, **FAST) as client:
        with pytest.raises(InvalidArgumentError):
            await client.basic_usage_event_consumer(user_id="never", debit=1)
    assert len(flaky.attempts) == 1


def test_retries_are_capped(module_server: Any, flaky: FlakyServer) -> None:
    flaky.script = ["unavailable"] * 10
    with (
        Scrawn(module_server.live_key, flaky.url, max_retries=2, **FAST) as client,
        pytest.raises(UnavailableError) as raised,
    ):
        client.basic_usage_event_consumer(user_id="never", debit=1)
    assert len(flaky.attempts) == 3 and len(set(keys_sent(flaky))) == 1
    assert raised.value.request_id == "abcdef123456"
    flaky.script = ["resource_exhausted"]
    with (
        Scrawn(module_server.live_key, flaky.url, max_retries=0, **FAST) as client,
        pytest.raises(ResourceExhaustedError),
    ):
        client.basic_usage_event_consumer(user_id="never", debit=1)


def test_connection_errors_and_timeouts_are_typed(
    closed_url: str, module_server: Any, flaky: FlakyServer
) -> None:
    with (
        Scrawn(module_server.live_key, closed_url, max_retries=1, **FAST) as client,
        pytest.raises(ConnectionFailedError) as refused,
    ):
        client.basic_usage_event_consumer(user_id="never", debit=1)
    assert refused.value.code == "unavailable"
    flaky.script = ["slow", "slow"]
    flaky.slow_seconds = 0.6
    with (
        Scrawn(module_server.live_key, flaky.url, max_retries=1, timeout=0.2, **FAST) as client,
        pytest.raises(RequestTimeoutError) as timed_out,
    ):
        client.basic_usage_event_consumer(user_id=f"retry-{uuid.uuid4().hex}", debit=1)
    assert timed_out.value.code == "deadline_exceeded" and len(flaky.attempts) == 2


def test_on_error_retry_asks_for_more_attempts(module_server: Any, flaky: FlakyServer) -> None:
    user = f"retry-{uuid.uuid4().hex}"
    flaky.script = ["unavailable"] * 6  # two rounds of 1 + 2 automatic attempts
    seen: list[tuple[str, int, int]] = []

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        seen.append((error.code, ctx.attempts, ctx.retry_count))
        assert ctx.retry() is True

    with Scrawn(module_server.live_key, flaky.url, max_retries=2, on_error=on_error, **FAST) as client:
        result = client.basic_usage_event_consumer(user_id=user, debit=4)
    assert result.ok and seen == [("unavailable", 3, 0), ("unavailable", 6, 1)]
    assert len(flaky.attempts) == 7 and set(keys_sent(flaky)) == {result.idempotency_key}
    _billed_once(module_server, user, Decimal(4))


def test_on_error_without_retry_returns_the_failure(module_server: Any, flaky: FlakyServer) -> None:
    flaky.script = ["invalid_argument", "unavailable", "unavailable"]
    seen: list[ScrawnError] = []
    with Scrawn(
        module_server.live_key, flaky.url, max_retries=1, on_error=lambda e, ctx: seen.append(e), **FAST
    ) as client:
        bad = client.basic_usage_event_consumer(user_id="never", debit=1)
        down = client.basic_usage_event_consumer(user_id="never", debit=1)
        # The limit: context.retry() answers False once max_retries manual retries were granted.
        flaky.script = ["unavailable"] * 10
        answers: list[bool] = []
        limited = client.basic_usage_event_consumer(
            user_id="never", debit=1, on_error=lambda e, ctx: answers.append(ctx.retry())
        )
    assert not bad.ok and isinstance(bad.error, InvalidArgumentError) and bad.error.field == "userId"
    assert not down.ok and isinstance(down.error, UnavailableError)
    assert seen == [bad.error, down.error]
    assert answers == [True, False] and isinstance(limited.error, UnavailableError)


async def test_async_on_error_may_be_a_coroutine(module_server: Any, flaky: FlakyServer) -> None:
    user = f"retry-{uuid.uuid4().hex}"
    flaky.script = ["unavailable", "unavailable"]
    calls = 0

    async def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        ctx.retry()

    async with AsyncScrawn(
        module_server.live_key, flaky.url, max_retries=1, on_error=on_error, **FAST
    ) as client:
        result = await client.basic_usage_event_consumer(user_id=user, debit=2)
    assert result.ok and calls == 1 and len(set(keys_sent(flaky))) == 1
    await asyncio.to_thread(_billed_once, module_server, user, Decimal(2))


def test_hook_exceptions_propagate(module_server: Any, flaky: FlakyServer) -> None:
    flaky.script = ["invalid_argument"]

    def on_error(error: ScrawnError, ctx: ErrorContext) -> None:
        raise RuntimeError("from the hook") from error

    with (
        Scrawn(module_server.live_key, flaky.url, on_error=on_error) as client,
        pytest.raises(RuntimeError, match="from the hook"),
    ):
        client.basic_usage_event_consumer(user_id="never", debit=1)
