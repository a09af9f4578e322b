"""The blocking client: :class:`Scrawn` and the :func:`scrawn` factory."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import AsyncIterable, Coroutine, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _core, _payments, _usage, _void, _wallet
from scrawn._connect import Transport
from scrawn._core import (
    ClientConfig,
    ErrorContext,
    ErrorHook,
    EventResult,
    PreparedEvent,
    Rpc,
    UsageType,
)
from scrawn._events import Events
from scrawn._integrations import Integrations
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._track import Tracker
from scrawn._usage import (
    CostBreakdown,
    ModelList,
    UsageContext,
    UsagePage,
    UsageRecord,
    UsageSeries,
    UsageSummary,
)
from scrawn._usage import (
    UsageType as LlmUsageType,
)
from scrawn._void import VoidedEvent
from scrawn._wallet_client import Confirmation, Reservation, ReservationPage, Wallet
from scrawn.errors import ScrawnError

if TYPE_CHECKING:
    from typing import Unpack

    import httpx

    from scrawn._ai_stream import AiStreamResult, AsyncForkedAiStream, ForkedAiStream
    from scrawn.types import ClientOptions, DebitInput, JSONObject, Number, StreamOptions, Timestamp

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class Scrawn(Integrations):
    """A Scrawn client for ordinary (blocking) code.

    ``Scrawn()`` reads ``SCRAWN_API_KEY`` and ``SCRAWN_BASE_URL`` (default ``http://127.0.0.1:8069``).
    Calls retry UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and connection failures up to
    ``max_retries`` times with capped exponential backoff and full jitter, reusing one idempotency key;
    other errors raise at once as :mod:`scrawn.errors` exceptions. ``on_error(error, context)`` sees a
    failure first: ``context.retry()`` asks for one more attempt, and a failure it handles is returned as an
    :class:`EventResult` with ``error`` set instead of raised.

    ``track()`` is non-blocking: events go to a bounded buffer that a background thread sends in batches;
    ``spool_path=`` makes them durable in a local SQLite file first.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = 10.0,
        max_retries: int = 3,
        on_error: ErrorHook | None = None,
        spool_path: str | os.PathLike[str] | None = None,
        spool_fsync: bool = False,
        buffer_size: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        exit_timeout: float = 5.0,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        http = Transport.check_client(http_client)
        self._config: ClientConfig = _core.resolve_config(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            on_error=on_error,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            spool_path=spool_path,
            spool_fsync=spool_fsync,
            buffer_size=buffer_size,
            batch_size=batch_size,
            flush_interval=flush_interval,
            exit_timeout=exit_timeout,
            worker_http=http,  # httpx.Client is thread-safe: track()'s thread shares it
        )
        self._transport = Transport(self._config.base_url, http=http)
        self._headers = _core.headers(self._config)
        self._tracker_lock = threading.Lock()
        self._tracker: Tracker | None = Tracker(self._config) if self._config.spool_path else None
        self.wallet = Wallet(self)
        """Prepaid credit: ``balance``, ``credit``, ``debit``, ``transactions``, ``settings``,
        ``update_settings`` (see :class:`~scrawn.Wallet`)."""

    # ----------------------------------------------------------------------------------------- misc

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def __repr__(self) -> str:
        return f"Scrawn(base_url={self._config.base_url!r}, api_key={self._config.masked_key()!r})"

    def __enter__(self) -> Scrawn:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> bool:
        """Deliver tracked events and queued AI events (waiting at most ``timeout`` seconds in all;
        ``None``: ``exit_timeout``, 5 s by default, for each buffer) and release connections. ``False`` when
        events were left undelivered (tracked ones stay in the spool, if there is one). Call ``flush()``
        first to wait longer."""
        timeout = _core.check_wait(timeout)
        deadline = _core.deadline(timeout)
        delivered = True
        self._closed = True
        if self._tracker is not None:
            delivered = self._tracker.close(timeout)
        ai = _core.ai_events_module()
        if ai is not None:  # AI events: ended fork streams still billing, then the track_ai buffer
            forks = self._config.exit_timeout if deadline is None else _core.remaining(deadline)
            delivered = ai.wait_forks_sync(self, forks) and delivered
            delivered = ai.close_buffer(self, _core.remaining(deadline)) and delivered
        self._transport.close()
        return delivered

    # ------------------------------------------------------------------------------------------ events

    def basic_usage_event_consumer(
        self,
        *,
        user_id: str,
        debit: DebitInput,
        metadata: JSONObject | str | None = None,
        event_id: str | None = None,
        idempotency_key: str | None = None,
        on_error: ErrorHook | None = None,
    ) -> EventResult:
        """Record one billable use for ``user_id`` and wait until it is stored.

        ``debit`` is an amount in minor units (``int``, ``Decimal``, decimal ``str``, ``float``), a
        ``tag("NAME")`` or a pricing expression (``mul(tag("PER_PAGE"), 3)``). ``metadata`` is a dict
        stored as JSON (≤ 16 KiB). ``idempotency_key`` defaults to a new UUID, reused by every retry."""
        on_error = _core.check_hook(on_error)
        event = _core.prepare_basic_event(user_id, debit, metadata, event_id, idempotency_key)
        return self._register(event, on_error)

    def _register(self, event: PreparedEvent, on_error: ErrorHook | None = None) -> EventResult:
        request = _core.register_request(event)

        def attempt(ctx: ErrorContext) -> EventResult:
            response = self._call(_core.REGISTER_EVENT, request, ev.RegisterEventResponse, ctx)
            return _core.event_result(response, event)

        result: EventResult = self._with_hook(
            "basic_usage_event_consumer",
            event.idempotency_key,
            event.user_id,
            on_error,
            attempt,
            lambda error: _core.failed_result(event, error),
        )
        return result

    def create_event(
        self,
        *,
        type: str,
        customer_ref: str,
        units: Number = 1,
        product_ref: str | None = None,
        metadata: JSONObject | str | None = None,
        event_id: str | None = None,
        idempotency_key: str | None = None,
        on_error: ErrorHook | None = None,
    ) -> EventResult:
        """Record a typed event — ``create_event(type="document.processed", customer_ref="cust_7",
        units=3)`` — priced by the project's event price for ``type`` (free when it has none), through
        ``usage.v1.UsageService/TrackEvents``. The result's ``event_id`` names the stored event and
        ``amount`` what it was charged."""
        on_error = _core.check_hook(on_error)
        event = _core.prepare_typed_event(
            type, customer_ref, units, product_ref, metadata, event_id, idempotency_key
        )
        request = _core.track_events_request(event)

        def attempt(ctx: ErrorContext) -> EventResult:
            result: EventResult = self._call(
                _core.TRACK_EVENTS,
                request,
                usage_pb.TrackEventsResponse,
                ctx,
                lambda response: _core.typed_result(response, event),
            )
            return result

        result: EventResult = self._with_hook(
            "create_event",
            event.idempotency_key,
            event.user_id,
            on_error,
            attempt,
            lambda error: _core.failed_result(event, error),
        )
        return result

    # ------------------------------------------------------------------------------------------- track

    _closed = False  # set by close(): track() then raises

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
        """Queue one billable use and return at once (no network in the caller).

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
            return self._track_event(_core.prepare_tracked(user_id, debit, metadata, idempotency_key))
        return self._track_event(
            _core.prepare_typed_tracked_call(
                user_id, debit, event_type, quantity, product_ref, metadata, idempotency_key, timestamp
            )
        )

    @functools.cached_property
    def events(self) -> Events:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``client.events.flush()``, ``pending_count``, ``dropped_count``."""
        return Events(self)

    def _track_event(self, event: _core.AnyTracked) -> bool:
        if self._closed:
            raise RuntimeError("track() on a closed Scrawn client")
        tracker = self._tracker
        if tracker is None:
            with self._tracker_lock:  # two threads' first track() must share one buffer
                tracker = self._tracker
                if tracker is None:
                    tracker = self._tracker = Tracker(self._config)
        return tracker.put(event)

    def _track_usage(
        self, user_id: Any, debit: Any, metadata: Any = None, usage_type: UsageType = "RAW"
    ) -> bool:
        """``track()`` with a basic-usage type (``MIDDLEWARE_CALL`` for the middleware)."""
        return self._track_event(_core.prepare_tracked(user_id, debit, metadata, None, usage_type))

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every event tracked — by ``track()``, the middleware, ``track_ai()`` or a wrapped
        LLM client — before this call is settled: delivered (kept for repricing counts as delivered) or
        failed for good. Returns ``False`` if ``timeout`` seconds passed first, or if any event was dropped
        since the previous completed ``flush()`` (see :attr:`dropped_count`)."""
        timeout = _core.check_wait(timeout)
        deadline = _core.deadline(timeout)
        delivered = True
        if self._tracker is not None:
            delivered = self._tracker.flush(timeout)
        ai = _core.ai_events_module()
        if ai is not None:
            delivered = ai.wait_forks_sync(self, _core.remaining(deadline)) and delivered
            buffer = ai.existing_buffer(self)
            if buffer is not None:
                delivered = buffer.flush(_core.remaining(deadline)) and delivered
        return delivered

    @property
    def pending_count(self) -> int:
        """Tracked events not yet settled (with a spool: including those left by an earlier run), AI
        events of ``track_ai()`` and wrapped LLM clients included."""
        return _core.buffered(self._tracker, self, "pending_count")

    @property
    def dropped_count(self) -> int:
        """Tracked events (AI events included) accepted but never delivered: the buffer was full, they
        failed for good (a permanent error ``on_error`` did not retry), or ``close()`` left them undelivered
        without a spool. Events kept for repricing were delivered and are not counted."""
        return _core.buffered(self._tracker, self, "dropped_count")

    # ------------------------------------------------------------------------------ wallets and holds

    def create_reservation(
        self,
        user_id: str,
        amount: Number,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str | None = None,
        description: str | None = None,
    ) -> Reservation:
        """Hold ``amount`` of the user's available credit for ``ttl_seconds`` (1–86,400), or raise
        :class:`~scrawn.errors.InsufficientCreditsError`. The :class:`~scrawn.Reservation` is a context
        manager: confirmed with ``set_actual(amount)`` when the block ends, cancelled if it raises."""
        rpc = _wallet.create_reservation(user_id, amount, ttl_seconds, idempotency_key, description)
        data, key = self._rpc(rpc)
        return Reservation(self, data, key)

    def confirm_reservation(
        self, reservation_id: str | Reservation, actual_amount: Number
    ) -> Confirmation[Reservation]:
        """Take ``actual_amount`` (``0 ≤ actual ≤ held``) as one ledger entry (its id is
        ``transaction_id``) and release the rest of the hold."""
        rpc = _wallet.confirm_reservation(reservation_id, actual_amount)
        done = self._rpc(rpc)
        reservation = self._bound(reservation_id, done.reservation)
        return Confirmation(reservation, done.transaction_id, done.balance)

    def cancel_reservation(self, reservation_id: str | Reservation) -> Reservation:
        """Release a hold (a no-op when it is already cancelled or expired)."""
        return self._bound(reservation_id, self._rpc(_wallet.cancel_reservation(reservation_id)))

    def extend_reservation(self, reservation_id: str | Reservation, ttl_seconds: int) -> Reservation:
        """Move a hold's expiry to now + ``ttl_seconds`` (1–86,400)."""
        rpc = _wallet.extend_reservation(reservation_id, ttl_seconds)
        return self._bound(reservation_id, self._rpc(rpc))

    def list_reservations(
        self,
        user_id: str | None = None,
        *,
        active_only: bool = False,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ReservationPage[Reservation]:
        """Reservations newest first (every user's when ``user_id`` is ``None``); ``limit`` 1–500."""
        found, token = self._rpc(_wallet.list_reservations(user_id, active_only, limit, page_token))
        return ReservationPage([Reservation(self, data) for data in found], token)

    def _bound(self, given: object, data: _wallet.ReservationData) -> Reservation:
        if isinstance(given, Reservation) and given._client is self:
            given._apply(data)
            return given
        return Reservation(self, data)

    # ------------------------------------------------------------------------------------------ usage

    def record_usage(
        self,
        *,
        model: str,
        context: UsageContext | None = None,
        user_id: str | None = None,
        transaction_id: str | None = None,
        provider: str | None = None,
        usage_type: LlmUsageType = "text",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        audio_seconds: Number | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
        timestamp: Timestamp | None = None,
    ) -> UsageRecord:
        """Price and store one LLM usage record (``usage.v1.UsageService/RecordUsage``), once per
        idempotency key. ``context="customer"`` (implied by ``transaction_id``) ties it to a confirmed
        reservation's ``transaction_id`` and needs ``user_id``; ``context="system"`` is your own usage.
        ``input_tokens`` counts every input token, cached ones included (docs/usage.md)."""
        usage = _usage.check_usage(
            model=model,
            provider=provider,
            usage_type=usage_type,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
            audio_seconds=audio_seconds,
        )
        return self._rpc(
            _usage.record_usage(
                context=context,
                user_id=user_id,
                transaction_id=transaction_id,
                usage=usage,
                description=description,
                idempotency_key=idempotency_key,
                timestamp=timestamp,
            )
        )

    def get_usage(
        self,
        *,
        user_id: str | None = None,
        context: UsageContext | None = None,
        model: str | None = None,
        usage_type: LlmUsageType | None = None,
        transaction_id: str | None = None,
        start_time: Timestamp | None = None,
        end_time: Timestamp | None = None,
        summary: bool = False,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> UsagePage:
        """Usage records matching the filter, newest first and paged (``limit`` 1–500, default 50), or
        with ``summary=True`` their :class:`~scrawn.UsageSummary` in ``.summary``. Times: an aware
        ``datetime`` or Unix milliseconds; ``[start_time, end_time)``."""
        filter_ = _usage.check_filter(
            user_id=user_id,
            context=context,
            model=model,
            usage_type=usage_type,
            transaction_id=transaction_id,
            start_time=start_time,
            end_time=end_time,
        )
        return self._rpc(_usage.get_usage(filter_, summary, limit, page_token))

    def get_usage_summary(
        self,
        *,
        user_id: str | None = None,
        context: UsageContext | None = None,
        model: str | None = None,
        usage_type: LlmUsageType | None = None,
        transaction_id: str | None = None,
        start_time: Timestamp | None = None,
        end_time: Timestamp | None = None,
    ) -> UsageSummary:
        """Total cost, records, tokens and audio seconds of the matching records, by model and by context."""
        filter_ = _usage.check_filter(
            user_id=user_id,
            context=context,
            model=model,
            usage_type=usage_type,
            transaction_id=transaction_id,
            start_time=start_time,
            end_time=end_time,
        )
        return self._rpc(_usage.get_usage_summary(filter_))

    def get_usage_series(
        self,
        *,
        bucket: Literal["hour", "day", "month"],
        start_time: Timestamp,
        end_time: Timestamp,
        time_zone: str = "UTC",
        user_id: str | None = None,
        context: UsageContext | None = None,
        model: str | None = None,
        usage_type: LlmUsageType | None = None,
        transaction_id: str | None = None,
    ) -> UsageSeries:
        """The same totals per hour, day or month of the IANA ``time_zone``, every bucket of the range."""
        filter_ = _usage.check_filter(
            user_id=user_id,
            context=context,
            model=model,
            usage_type=usage_type,
            transaction_id=transaction_id,
            start_time=start_time,
            end_time=end_time,
            require_range=True,
        )
        return self._rpc(_usage.get_usage_series(filter_, bucket, time_zone))

    def collect_payment(
        self, user_id: str, *, top_up: Number | None = None, return_url: str | None = None
    ) -> str:
        """A checkout link (``{base}/checkout/{id}``) charging what ``user_id`` owes, rounded up to a whole
        minor unit, or a ``top_up`` of their prepaid wallet (int, Decimal or str, in the project's amount
        unit). The same link comes back while that checkout is open; a changed amount replaces it. Raises
        FailedPreconditionError when there is nothing to pay or no payment provider is configured."""
        return self._rpc(_payments.collect_payment(user_id, top_up, return_url))

    def void_event(
        self, *, event_id: str | None = None, idempotency_key: str | None = None, reason: str
    ) -> VoidedEvent:
        """Void a billed event (by ``event_id`` or ``idempotency_key``, exactly one) with a ``reason``: one
        reversing ledger entry credits its debit back, exactly once; the event stays, marked voided, and its
        idempotency key stays taken. Voiding it again answers ``already_voided=True`` with the first void.
        Raises NotFoundError when the key's project and mode hold no such event."""
        return self._rpc(_void.void_event(event_id, idempotency_key, reason))

    def list_models(
        self,
        *,
        provider: str | None = None,
        search: str | None = None,
        at: Timestamp | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ModelList:
        """The price list in force ``at`` (default now): the project's overrides, then the model price book,
        in USD per million tokens; ``limit`` 1–1000 (default 100)."""
        return self._rpc(_usage.list_models(provider, search, at, limit, page_token))

    def calculate_cost(
        self,
        *,
        model: str,
        provider: str | None = None,
        usage_type: LlmUsageType = "text",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        audio_seconds: Number | None = None,
        timestamp: Timestamp | None = None,
    ) -> CostBreakdown:
        """What this usage costs, in cents, with the prices in force at ``timestamp`` (default now)."""
        usage = _usage.check_usage(
            model=model,
            provider=provider,
            usage_type=usage_type,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
            audio_seconds=audio_seconds,
        )
        return self._rpc(_usage.calculate_cost(usage, timestamp))

    # ----------------------------------------------------------------------------------- integrations

    @overload
    def ai_token_stream_consumer(
        self, chunks: Iterable[T], *, fork: Literal[False] = False, **options: Unpack[StreamOptions[T]]
    ) -> AiStreamResult: ...
    @overload
    def ai_token_stream_consumer(
        self, chunks: Iterable[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
    ) -> ForkedAiStream[T]: ...
    @overload
    def ai_token_stream_consumer(
        self, chunks: AsyncIterable[T], *, fork: Literal[False] = False, **options: Unpack[StreamOptions[T]]
    ) -> Coroutine[object, None, AiStreamResult]: ...
    @overload
    def ai_token_stream_consumer(
        self, chunks: AsyncIterable[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
    ) -> AsyncForkedAiStream[T]: ...
    def ai_token_stream_consumer(
        self, chunks: Iterable[Any] | AsyncIterable[Any], *, fork: bool = False, **options: Any
    ) -> Any:
        """Bill a stream of token-usage chunks (:func:`scrawn.ai.ai_token_stream_consumer` with this
        client; ``options`` are its keyword arguments: ``user_id``, ``model``, the debits, ``extract``, …)."""
        from scrawn.ai import ai_token_stream_consumer

        return ai_token_stream_consumer(self, chunks, fork=fork, **options)  # type: ignore[call-overload]

    # ------------------------------------------------------------------------------------- machinery

    def _rpc(self, rpc: Rpc[R]) -> R:
        """One validated unary call with the automatic retries (same request, same idempotency key)."""
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        result: R = self._call(rpc.path, rpc.request, rpc.response_type, ctx, rpc.unpack)
        return result

    def _call(
        self, path: str, request: Any, response_type: Any, ctx: ErrorContext, unpack: Any = None
    ) -> Any:
        """One logical call: automatic retries with backoff on retryable failures only. ``unpack`` turns
        the response into the result and may raise (a failed batch item), retried by the same rules."""
        retries = 0
        while True:
            ctx.attempts += 1
            try:
                response = self._transport.unary(
                    path, request, response_type, self._headers, self._config.timeout
                )
                return response if unpack is None else unpack(response)
            except ScrawnError as error:
                delay = _core.retry_delay(self._config, error, retries)
                if delay is None:
                    raise
                retries += 1
                time.sleep(delay)

    def _with_hook(
        self,
        operation: str,
        idempotency_key: str,
        user_id: str | None,
        on_error: ErrorHook | None,
        attempt: Any,
        handled: Any,
    ) -> Any:
        hook = on_error or self._config.on_error
        ctx = ErrorContext(operation, idempotency_key, user_id, self._config.max_retries)
        while True:
            try:
                return attempt(ctx)
            except ScrawnError as error:
                if hook is None:
                    raise
                _core.run_sync_hook(hook, error, ctx)
                # An event kept for repricing is stored: a retry would only be answered the same way.
                if not ctx._take_request() or _core.is_quarantined(error):
                    return handled(error)


def scrawn(
    api_key: str | None = None, base_url: str | None = None, **options: Unpack[ClientOptions]
) -> Scrawn:
    """The TS SDK's factory: ``scrawn(api_key=..., base_url=...)`` is ``Scrawn(api_key, base_url)``."""
    return Scrawn(api_key, base_url, **options)
