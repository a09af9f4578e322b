"""What every client is, below the AI machinery, the middleware and the typed-events helpers.

:class:`ClientBase` holds what both clients share, written once: the configuration, the ``track()``
buffer, the AI state (created on first use), the counters, the calls (:mod:`scrawn._calls`) and the
procedures with I/O — retries, ``on_error``, ``flush()``, ``close()`` — as generators of steps
(:mod:`scrawn._methods`). :class:`SyncClient` and :class:`AsyncClient` are the two flavours: how a step
runs (blocking, or awaited) and the thin methods that run the procedures. They are the interfaces
:mod:`scrawn.ai`, :mod:`scrawn.middleware` and :mod:`scrawn._events` depend on — :class:`scrawn.Scrawn`
and :class:`scrawn.AsyncScrawn` add only their constructors and flavour-typed helpers — so nothing under
the clients imports the clients, and the SDK's imports form no circle. They are classes rather than
Protocols because the integrations check at run time that they were given a client, and which flavour
(``isinstance``)."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from scrawn import _calls, _config, _core, _retry, _tracked, _wallet
from scrawn._calls import EventCall
from scrawn._closing import AsyncClosing, Closing
from scrawn._config import ClientConfig
from scrawn._connect import AsyncTransport, Transport
from scrawn._core import EventResult, UsageType
from scrawn._methods import Asyncio, Blocking, Steps, call, call_now, event_call, in_thread, run, run_async
from scrawn._retry import ErrorContext, ErrorHook, Rpc
from scrawn._track import Tracker
from scrawn._wallet_client import (
    AsyncReservation,
    Confirmation,
    Reservation,
    ReservationPage,
    ReservationRequest,
    _ReservationState,
)
from scrawn._wallet_results import ReservationData
from scrawn.errors import ScrawnError

if TYPE_CHECKING:
    import httpx

    from scrawn.types import DebitInput, JSONObject, Number

R = TypeVar("R")
T = TypeVar("T")
Res = TypeVar("Res", bound=_ReservationState)
Held = TypeVar("Held")


@dataclass
class AiState:
    """A client's AI event machinery: the ``track_ai`` buffer (its tracker and the transports its
    sender opened), drops of buffers already closed, and the billers of ``fork=True`` streams, so that
    the client's ``flush()`` and ``close()`` wait for the chunks a finished stream still has to bill."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tracker: Tracker | None = None
    transports: list[Transport] = field(default_factory=list)
    dropped_by_closed: int = 0
    forks: weakref.WeakSet[object] = field(default_factory=weakref.WeakSet)

    def finished_forks(self) -> list[Any]:
        """Billers whose stream has ended (no more chunks will come) — only those can be waited for."""
        with self.lock:
            return [b for b in list(self.forks) if getattr(b, "_finished", False)]

    def close_buffer(self, timeout: float | None) -> bool:
        """Deliver and stop the ``track_ai`` buffer (blocking); a later ``track_ai`` starts a new one.
        ``False`` when events were left undelivered."""
        with self.lock:
            tracker, transports = self.tracker, self.transports
            self.tracker, self.transports = None, []
        if tracker is None:
            return True
        try:
            return tracker.close(timeout)
        finally:
            with self.lock:
                self.dropped_by_closed += tracker.dropped_count
            for transport in transports:
                transport.close()


_AI_STATE_LOCK = threading.Lock()  # two threads' first AI call must share one state


class ClientBase:
    """Shared by :class:`scrawn.Scrawn` and :class:`scrawn.AsyncScrawn`."""

    _config: ClientConfig
    _headers: dict[str, str]
    _transport: Transport | AsyncTransport
    _tracker: Tracker | None
    _tracker_lock: threading.Lock
    _closed = False  # set by close(): track() then raises
    _ai_state: AiState | None = None

    def _setup(
        self,
        arguments: dict[str, Any],
        transport: Callable[..., Transport | AsyncTransport],
        http: object,
        worker_http: httpx.Client | None,
    ) -> None:
        """The constructor of both clients (``arguments``: theirs, by name), after each has checked its
        HTTP clients: ``http`` for calls, ``worker_http`` for the background delivery thread."""
        config = _config.resolve_config(arguments, worker_http)
        self._config = config
        self._transport = transport(config.base_url, http=http)
        self._headers = _config.headers(config)
        self._tracker_lock = threading.Lock()
        self._tracker = self._new_tracker() if config.spool_path else None

    @property
    def _ai(self) -> AiState:
        """The client's AI state, created on first use (``track_ai``, a wrapped LLM client, a stream)."""
        state = self._ai_state
        if state is None:
            with _AI_STATE_LOCK:
                state = self._ai_state
                if state is None:
                    state = self._ai_state = AiState()
        return state

    def _new_tracker(self) -> Tracker:
        return Tracker(self._config)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._config.base_url!r}, "
            f"api_key={self._config.masked_key()!r})"
        )

    # ------------------------------------------------------------------------------------------- track

    @overload
    def track(
        self,
        *,
        user_id: str,
        debit: DebitInput,
        metadata: JSONObject | str | None = None,
        idempotency_key: str | None = None,
    ) -> bool: ...
    @overload
    def track(
        self,
        *,
        user_id: str,
        event_type: str,
        quantity: Number = 1,
        product_ref: str | None = None,
        metadata: JSONObject | str | None = None,
        idempotency_key: str | None = None,
        timestamp: datetime | int | None = None,
    ) -> bool: ...
    def track(
        self,
        *,
        user_id: str,
        debit: DebitInput | None = None,
        event_type: str | None = None,
        quantity: Number | None = None,
        product_ref: str | None = None,
        metadata: JSONObject | str | None = None,
        idempotency_key: str | None = None,
        timestamp: datetime | int | None = None,
    ) -> bool:
        """Queue one billable use and return at once (no network in the caller; on ``AsyncScrawn`` too:
        not a coroutine, nothing to await).

        Either a debit event — ``track(user_id=, debit=)``, ``debit`` as for ``basic_usage_event_consumer``
        — or a typed event priced by the project's event price for its type (free without one):
        ``track(user_id=, event_type="AI_QUERY", quantity=1, metadata={...})``, optionally ``product_ref``
        and ``timestamp`` (an aware ``datetime`` or Unix seconds; default now). Validated here (a
        :class:`~scrawn.errors.ValidationError` names the field); delivered in batches by a background
        thread, exactly once. Returns ``False`` when the buffer is full and the event was dropped (counted
        in :attr:`dropped_count`). Raises ``RuntimeError`` once the client is closed."""
        if (
            debit is not None
            and event_type is None
            and quantity is None
            and product_ref is None
            and timestamp is None
        ):  # the debit form, kept as cheap as before
            return self._track_event(_tracked.prepare_tracked(user_id, debit, metadata, idempotency_key))
        return self._track_event(
            _tracked.prepare_typed_tracked_call(
                user_id, debit, event_type, quantity, product_ref, metadata, idempotency_key, timestamp
            )
        )

    def _track_event(self, event: _tracked.AnyTracked) -> bool:
        if self._closed:
            raise RuntimeError(f"track() on a closed {type(self).__name__} client")
        tracker = self._tracker
        if tracker is None:
            with self._tracker_lock:  # two threads' first track() must share one buffer
                tracker = self._tracker
                if tracker is None:
                    tracker = self._tracker = self._new_tracker()
        return tracker.put(event)

    def _track_usage(
        self, user_id: object, debit: object, metadata: object = None, usage_type: UsageType = "RAW"
    ) -> bool:
        """``track()`` with a basic-usage type (``MIDDLEWARE_CALL`` for the middleware)."""
        return self._track_event(_tracked.prepare_tracked(user_id, debit, metadata, None, usage_type))

    def _buffered(self, attribute: str) -> int:
        """``pending_count``/``dropped_count``: the ``track()`` buffer's plus the AI buffer's (drops of
        closed AI buffers included)."""
        count = 0 if self._tracker is None else int(getattr(self._tracker, attribute))
        state = self._ai_state
        if state is not None:
            if state.tracker is not None:
                count += int(getattr(state.tracker, attribute))
            if attribute == "dropped_count":
                count += state.dropped_by_closed
        return count

    @property
    def pending_count(self) -> int:
        """Tracked events not yet settled (with a spool: including those left by an earlier run), AI
        events of ``track_ai()`` and wrapped LLM clients included."""
        return self._buffered("pending_count")

    @property
    def dropped_count(self) -> int:
        """Tracked events (AI events included) accepted but never delivered: the buffer was full, they
        failed for good (a permanent error ``on_error`` did not retry), or ``close()`` left them undelivered
        without a spool. Events kept for repricing were delivered and are not counted."""
        return self._buffered("dropped_count")

    # ------------------------------------------------------------------ calls (defined in scrawn._calls)

    basic_usage_event_consumer = event_call(_calls.basic_usage_event_consumer)
    create_event = event_call(_calls.create_event)
    record_usage = call(_calls.record_usage)
    get_usage = call(_calls.get_usage)
    get_usage_summary = call(_calls.get_usage_summary)
    get_usage_series = call(_calls.get_usage_series)
    collect_payment = call(_calls.collect_payment)
    portal_link = call(_calls.portal_link)
    void_event = call(_calls.void_event)
    list_models = call(_calls.list_models)
    calculate_cost = call(_calls.calculate_cost)

    # --------------------------------------------------------- procedures (run by the flavours below)

    # How a flavour runs a blocking function (the asyncio one: in a thread), sleeps and calls on_error.
    _in_thread: Callable[..., object]
    _sleep: Callable[[float], object]
    _run_hook: Callable[[ErrorHook, ScrawnError, ErrorContext], object]

    def _rpc_steps(self, rpc: Rpc[R]) -> Steps[R]:
        """One validated unary call with the automatic retries (same request, same idempotency key)."""
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        return (yield from self._attempt_steps(rpc, ctx))

    def _attempt_steps(self, rpc: Rpc[R], ctx: ErrorContext) -> Steps[R]:
        """One logical call: automatic retries with backoff on retryable failures only. ``rpc.unpack``
        turns the response into the result and may raise (a failed batch item), retried by the same rules."""
        retries = 0
        send = partial(self._transport.unary, rpc.path, rpc.request, rpc.response_type, self._headers)
        while True:
            ctx.attempts += 1
            try:
                return rpc.unpack((yield partial(send, self._config.timeout)))
            except ScrawnError as error:
                delay = _retry.delay_or_raise(self._config, error, retries)
                retries += 1
                yield partial(self._sleep, delay)

    def _event_steps(self, call: EventCall[T]) -> Steps[EventResult]:
        """An event call: its failures go through ``on_error``, which may ask for another attempt."""
        rpc = call.rpc
        hook = call.on_error or self._config.on_error
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        while True:
            try:
                return call.finish((yield from self._attempt_steps(rpc, ctx)))
            except ScrawnError as error:
                if hook is None:
                    raise
                yield partial(self._run_hook, hook, error, ctx)
                # An event kept for repricing is stored: a retry would only be answered the same way.
                if not ctx._take_request() or _core.is_quarantined(error):
                    return call.handled(error)

    def _flush_steps(self, timeout: float | None) -> Steps[bool]:
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        if self._tracker is not None:
            self._flushing()
            delivered = yield partial(self._in_thread, self._tracker.flush, timeout)
        if self._ai_state is not None:
            delivered = (yield from self._fork_steps(_config.remaining(deadline))) and delivered
            buffer = self._ai_state.tracker
            if buffer is not None:
                flushed = yield partial(self._in_thread, buffer.flush, _config.remaining(deadline))
                delivered = flushed and delivered
        return delivered

    def _close_steps(self, timeout: float | None) -> Steps[bool]:
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        self._closed = True
        if self._tracker is not None:
            delivered = yield partial(self._in_thread, self._tracker.close, timeout)
        state = self._ai_state
        if state is not None:  # ended fork streams still billing, then the track_ai buffer
            forks = self._config.exit_timeout if deadline is None else _config.remaining(deadline)
            delivered = (yield from self._fork_steps(forks)) and delivered
            closed = yield partial(self._in_thread, state.close_buffer, _config.remaining(deadline))
            delivered = closed and delivered
        yield self._transport.close
        return delivered

    def _fork_steps(self, timeout: float | None) -> Steps[bool]:
        """Wait (at most ``timeout`` seconds in all) until the billers of the client's ended fork streams
        have billed what they were given: thread billers, and on the asyncio client the task billers of
        the running event loop. ``False`` on timeout."""
        deadline = _config.deadline(timeout)
        done = True
        for biller in [] if self._ai_state is None else self._ai_state.finished_forks():
            task = getattr(biller, "_task", None) if isinstance(self, Asyncio) else None
            if task is not None and task.get_loop() is asyncio.get_running_loop():
                done = (yield partial(biller.wait, _config.remaining(deadline))) and done
            elif getattr(biller, "_thread", None) is not None:
                done = (yield partial(self._in_thread, biller.wait, _config.remaining(deadline))) and done
        return done

    def _flushing(self) -> None:
        """Called as ``flush()`` waits for the ``track()`` buffer."""


class Reserving(ClientBase, Generic[Res, Held]):
    """Wallet holds, both flavours: ``create_reservation``, and the procedures of the rest, whose methods
    each client types with its own reservation objects (``Res``); ``Held`` is what ``create_reservation``
    gives (``_hold``)."""

    _reservation_type: Callable[..., Res]
    _hold: Callable[[Rpc[tuple[ReservationData, str]]], Held]

    def create_reservation(
        self,
        user_id: str,
        amount: Number,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> Held:
        """Hold ``amount`` of the user's available credit for ``ttl_seconds`` (1–86,400), or raise
        :class:`~scrawn.errors.InsufficientCreditsError`. The :class:`~scrawn.Reservation` is a context
        manager: confirmed with ``set_actual(amount)`` when the block ends, cancelled if it raises.

        On :class:`~scrawn.AsyncScrawn` the arguments are validated now; ``await`` the result for the
        :class:`~scrawn.AsyncReservation`, or use it directly:
        ``async with client.create_reservation("user_42", 500) as hold: ...``."""
        return self._hold(
            _wallet.create_reservation(user_id, amount, ttl_seconds, idempotency_key, description)
        )

    def _new_reservation_steps(self, rpc: Rpc[tuple[ReservationData, str]]) -> Steps[Res]:
        data, key = yield from self._rpc_steps(rpc)
        return self._reservation_type(self, data, key)

    def _confirm_steps(self, given: object, actual_amount: Number) -> Steps[Confirmation[Res]]:
        done = yield from self._rpc_steps(_wallet.confirm_reservation(given, actual_amount))
        return Confirmation(self._bound(given, done.reservation), done.transaction_id, done.balance)

    def _update_steps(self, given: object, rpc: Rpc[ReservationData]) -> Steps[Res]:
        return self._bound(given, (yield from self._rpc_steps(rpc)))

    def _page_steps(self, rpc: Rpc[tuple[list[ReservationData], str | None]]) -> Steps[ReservationPage[Res]]:
        found, token = yield from self._rpc_steps(rpc)
        return ReservationPage([self._reservation_type(self, data) for data in found], token)

    def _bound(self, given: object, data: ReservationData) -> Res:
        """The reservation object a call was given, brought up to date, or a new one for an id."""
        if isinstance(given, _ReservationState) and getattr(given, "_client", None) is self:
            given._apply(data)
            return cast(Res, given)
        return self._reservation_type(self, data)


class SyncClient(Reserving[Reservation, Reservation], Blocking, Closing):
    """The blocking flavour (:class:`scrawn.Scrawn`): steps run in the calling thread."""

    _transport: Transport
    _reservation_type = Reservation
    _in_thread = staticmethod(call_now)
    _sleep = staticmethod(time.sleep)
    _run_hook = staticmethod(_retry.run_sync_hook)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every event tracked — by ``track()``, the middleware, ``track_ai()`` or a wrapped
        LLM client — before this call is settled: delivered (kept for repricing counts as delivered) or
        failed for good. Returns ``False`` if ``timeout`` seconds passed first, or if any event was dropped
        since the previous completed ``flush()`` (see :attr:`dropped_count`)."""
        return run(self._flush_steps(timeout))

    def close(self, timeout: float | None = None) -> bool:
        """Deliver tracked events and queued AI events (waiting at most ``timeout`` seconds in all;
        ``None``: ``exit_timeout``, 5 s by default, for each buffer) and release connections. ``False`` when
        events were left undelivered (tracked ones stay in the spool, if there is one). Call ``flush()``
        first to wait longer."""
        return run(self._close_steps(timeout))

    def _rpc(self, rpc: Rpc[R]) -> R:
        return run(self._rpc_steps(rpc))

    def _hold(self, rpc: Rpc[tuple[ReservationData, str]]) -> Reservation:
        return run(self._new_reservation_steps(rpc))

    def _event(self, call: EventCall[T]) -> EventResult:
        return run(self._event_steps(call))


class AsyncClient(Reserving[AsyncReservation, ReservationRequest], Asyncio, AsyncClosing):
    """The asyncio flavour (:class:`scrawn.AsyncScrawn`): steps are awaited, blocking ones in a thread."""

    _transport: AsyncTransport
    _reservation_type = AsyncReservation
    _in_thread = staticmethod(in_thread)
    _sleep = staticmethod(asyncio.sleep)
    _run_hook = staticmethod(call_now)  # an ``async def`` hook's coroutine is awaited
    _loop: asyncio.AbstractEventLoop | None = None  # where on_error hooks of track() run

    def _new_tracker(self) -> Tracker:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        return Tracker(self._config, hook_loop=lambda: self._loop)

    def _flushing(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every event tracked (``track()``, middleware, ``track_ai()``, wrapped LLM clients)
        before this call is settled; ``False`` on timeout or if any event was dropped since the previous
        completed ``flush()`` (see ``Scrawn.flush``)."""
        return await run_async(self._flush_steps(timeout))

    async def close(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Deliver tracked events and queued AI events (waiting at most ``timeout`` seconds in all;
        ``None``: ``exit_timeout`` for each buffer) and release connections. ``False`` when events were
        left undelivered."""
        return await run_async(self._close_steps(timeout))

    aclose = close

    async def _rpc(self, rpc: Rpc[R]) -> R:
        return await run_async(self._rpc_steps(rpc))

    def _hold(self, rpc: Rpc[tuple[ReservationData, str]]) -> ReservationRequest:
        """The hold is created on the first ``await`` or ``async with``."""
        return ReservationRequest(lambda: run_async(self._new_reservation_steps(rpc)))

    async def _event(self, call: EventCall[T]) -> EventResult:
        return await run_async(self._event_steps(call))


AnyClient = SyncClient | AsyncClient
