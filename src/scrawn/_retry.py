"""How a call is sent and retried, for both clients: :class:`Rpc` (one validated unary call, re-sent
identically on every retry), the retry decisions (which failures, how long to wait) and the
:class:`ErrorContext` an ``on_error`` hook sees. No I/O: the clients sleep and send."""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from scrawn._config import ClientConfig
from scrawn.errors import ScrawnError

RETRYABLE_CODES: Final = frozenset({"unavailable", "resource_exhausted", "deadline_exceeded"})
RETRY_AFTER_CODES: Final = frozenset({"unavailable", "resource_exhausted"})
RETRY_AFTER_MAX: Final = 60.0  # the longest server-requested wait honoured before a retry, in seconds

ErrorHook = Callable[[ScrawnError, "ErrorContext"], object]
"""``on_error(error, context)``; an awaitable it returns is awaited, any other value ignored."""


# ------------------------------------------------------------------------------------------ unary calls

R = TypeVar("R")


@dataclass(frozen=True)
class Rpc(Generic[R]):
    """One validated unary call, ready to send (and re-send identically on every retry): the request
    message, the response type and how to turn the response into the caller's result. Built by the
    sans-I/O modules (:mod:`scrawn._wallet`, :mod:`scrawn._usage`), sent by either client."""

    operation: str
    path: str
    request: Any
    response_type: Any
    unpack: Callable[[Any], R]
    idempotency_key: str = ""
    user_id: str | None = None


# ------------------------------------------------------------------------------------------- retries


def is_retryable(error: ScrawnError) -> bool:
    """UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and connection failures (which are
    :class:`~scrawn.errors.UnavailableError` / :class:`~scrawn.errors.DeadlineExceededError`) only."""
    return error.code in RETRYABLE_CODES


def backoff(attempt: int, base: float, cap: float, error: ScrawnError | None = None) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)] — but never
    less than the wait the server asked for in ``error``'s ``Retry-After`` (see :func:`server_wait`)."""
    jittered = random.uniform(0, min(cap, base * (2 ** min(attempt, 32))))
    return jittered if error is None else max(jittered, server_wait(error))


def server_wait(error: ScrawnError) -> float:
    """The ``Retry-After`` of a RESOURCE_EXHAUSTED or UNAVAILABLE answer, at most ``RETRY_AFTER_MAX``
    seconds (a longer request is honoured that far: a retry sooner than asked may fail again, but a blocked
    caller waiting an hour would be worse); 0 when the server did not say."""
    after = error.retry_after
    if after is None or error.code not in RETRY_AFTER_CODES or not after > 0:
        return 0.0
    return min(after, RETRY_AFTER_MAX)


def retry_delay(config: ClientConfig, error: ScrawnError, retries_done: int) -> float | None:
    """Seconds to wait before the next automatic attempt, or ``None`` to stop retrying."""
    if retries_done >= config.max_retries or not is_retryable(error):
        return None
    return backoff(retries_done, config.backoff_base, config.backoff_max, error)


def delay_or_raise(config: ClientConfig, error: ScrawnError, retries_done: int) -> float:
    """:func:`retry_delay` in the clients' retry loops: the seconds to wait, or ``error`` raised again
    when it is not retried."""
    delay = retry_delay(config, error, retries_done)
    if delay is None:
        raise error
    return delay


class ErrorContext:
    """Passed to ``on_error(error, context)``. ``context.retry()`` asks for one more attempt of the same
    call with the same idempotency key (as in the TS SDK); it returns ``False`` once ``max_retries`` manual
    retries have been used. Call it inside the hook."""

    __slots__ = ("_max", "_requested", "attempts", "idempotency_key", "operation", "retry_count", "user_id")

    def __init__(self, operation: str, idempotency_key: str, user_id: str | None, max_retries: int) -> None:
        self.operation = operation
        self.idempotency_key = idempotency_key
        self.user_id = user_id
        self.attempts = 0  # attempts made so far (automatic retries included)
        self.retry_count = 0  # manual retries granted so far
        self._max = max_retries
        self._requested = False

    def retry(self) -> bool:
        if self._requested:
            return True
        if self.retry_count >= self._max:
            return False
        self._requested = True
        return True

    def _take_request(self) -> bool:
        requested, self._requested = self._requested, False
        if requested:
            self.retry_count += 1
        return requested

    def __repr__(self) -> str:
        return (
            f"ErrorContext(operation={self.operation!r}, idempotency_key={self.idempotency_key!r}, "
            f"attempts={self.attempts}, retry_count={self.retry_count})"
        )


def run_sync_hook(hook: ErrorHook, error: ScrawnError, ctx: ErrorContext) -> None:
    """Call ``on_error`` from blocking code; an ``async def`` hook is run to completion."""
    result = hook(error, ctx)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(awaitable: Any) -> None:
    await awaitable
