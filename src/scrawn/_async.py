"""The asyncio client: :class:`AsyncScrawn`, the same calls as :class:`~scrawn.Scrawn` awaited."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterable, Coroutine, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _core, _payments, _usage, _void, _wallet
from scrawn._connect import AsyncTransport
from scrawn._core import (
    ClientConfig,
    ErrorContext,
    ErrorHook,
    EventResult,
    PreparedEvent,
    Rpc,
    UsageType,
)
from scrawn._events import AsyncEvents
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
from scrawn._wallet_client import (
    AsyncReservation,
    AsyncWallet,
    Confirmation,
    ReservationPage,
    ReservationRequest,
)
from scrawn.errors import ScrawnError

if TYPE_CHECKING:
    from typing import Unpack

    import httpx

    from scrawn._ai_stream import AiStreamResult, AsyncForkedAiStream
    from scrawn.types import DebitInput, JSONObject, Number, StreamOptions, Timestamp

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class AsyncScrawn(Integrations):
    """A Scrawn client for asyncio code; options and behaviour as :class:`~scrawn.Scrawn`.

    ``on_error`` may be a plain function or an ``async def``. ``track()`` is the same non-blocking call
    (a plain method: it never waits); ``flush()`` and ``close()`` are awaited."""

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
        http_client: httpx.AsyncClient | None = None,
        sync_http_client: httpx.Client | None = None,
    ) -> None:
        http = AsyncTransport.check_client(http_client)
        worker_http = AsyncTransport.check_worker_client(sync_http_client)
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
            worker_http=worker_http,  # the background thread cannot use an AsyncClient
        )
        self._transport = AsyncTransport(self._config.base_url, http=http)
        self._headers = _core.headers(self._config)
        self._tracker_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracker: Tracker | None = self._new_tracker() if self._config.spool_path else None
        self.wallet = AsyncWallet(self)
        """Prepaid credit: ``await client.wallet.balance(...)``, ``credit``, ``debit``, … (see
        :class:`~scrawn.AsyncWallet`)."""

    # ----------------------------------------------------------------------------------------- misc

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def __repr__(self) -> str:
        return f"AsyncScrawn(base_url={self._config.base_url!r}, api_key={self._config.masked_key()!r})"

    async def __aenter__(self) -> AsyncScrawn:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Deliver tracked events and queued AI events (waiting at most ``timeout`` seconds in all;
        ``None``: ``exit_timeout`` for each buffer) and release connections. ``False`` when events were
        left undelivered."""
        timeout = _core.check_wait(timeout)
        deadline = _core.deadline(timeout)
        delivered = True
        self._closed = True
        if self._tracker is not None:
            delivered = await asyncio.to_thread(self._tracker.close, timeout)
        ai = _core.ai_events_module()
        if ai is not None:  # AI events: ended fork streams still billing, then the track_ai buffer
            forks = self._config.exit_timeout if deadline is None else _core.remaining(deadline)
            delivered = await ai.wait_forks_async(self, forks) and delivered
            closed = await asyncio.to_thread(ai.close_buffer, self, _core.remaining(deadline))
            delivered = closed and delivered
        await self._transport.close()
        return delivered

    aclose = close

    # ------------------------------------------------------------------------------------------ events

    async def basic_usage_event_consumer(
        self,
        *,
        user_id: str,
        debit: DebitInput,
        metadata: JSONObject | str | None = None,
        event_id: str | None = None,
        idempotency_key: str | None = None,
        on_error: ErrorHook | None = None,
    ) -> EventResult:
        """Record one billable use for ``user_id`` and wait until it is stored (see ``Scrawn``)."""
        on_error = _core.check_hook(on_error)
        event = _core.prepare_basic_event(user_id, debit, metadata, event_id, idempotency_key)
        return await self._register(event, on_error)

    async def _register(self, event: PreparedEvent, on_error: ErrorHook | None = None) -> EventResult:
        request = _core.register_request(event)

        async def attempt(ctx: ErrorContext) -> EventResult:
            response = await self._call(_core.REGISTER_EVENT, request, ev.RegisterEventResponse, ctx)
            return _core.event_result(response, event)

        result: EventResult = await self._with_hook(
            "basic_usage_event_consumer",
            event.idempotency_key,
            event.user_id,
            on_error,
            attempt,
            lambda error: _core.failed_result(event, error),
        )
        return result

    async def create_event(
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

        async def attempt(ctx: ErrorContext) -> EventResult:
            result: EventResult = await self._call(
                _core.TRACK_EVENTS,
                request,
                usage_pb.TrackEventsResponse,
                ctx,
                lambda response: _core.typed_result(response, event),
            )
            return result

        result: EventResult = await self._with_hook(
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
        """Queue one billable use — ``debit=`` or a typed ``event_type=`` (see ``Scrawn.track``) — and
        return at once (not a coroutine: nothing to await). Raises ``RuntimeError`` once closed."""
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
    def events(self) -> AsyncEvents:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``await client.events.flush()``, ``pending_count``,
        ``dropped_count``."""
        return AsyncEvents(self)

    def _track_event(self, event: _core.AnyTracked) -> bool:
        if self._closed:
            raise RuntimeError("track() on a closed AsyncScrawn client")
        tracker = self._tracker
        if tracker is None:
            with self._tracker_lock:  # two threads' first track() must share one buffer
                tracker = self._tracker
                if tracker is None:
                    tracker = self._tracker = self._new_tracker()
        return tracker.put(event)

    def _track_usage(
        self, user_id: Any, debit: Any, metadata: Any = None, usage_type: UsageType = "RAW"
    ) -> bool:
        return self._track_event(_core.prepare_tracked(user_id, debit, metadata, None, usage_type))

    def _new_tracker(self) -> Tracker:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        return Tracker(self._config, hook_loop=lambda: self._loop)

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until every event tracked (``track()``, middleware, ``track_ai()``, wrapped LLM clients)
        before this call is settled; ``False`` on timeout or if any event was dropped since the previous
        completed ``flush()`` (see ``Scrawn.flush``)."""
        timeout = _core.check_wait(timeout)
        deadline = _core.deadline(timeout)
        delivered = True
        if self._tracker is not None:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            delivered = await asyncio.to_thread(self._tracker.flush, timeout)
        ai = _core.ai_events_module()
        if ai is not None:
            delivered = await ai.wait_forks_async(self, _core.remaining(deadline)) and delivered
            buffer = ai.existing_buffer(self)
            if buffer is not None:
                flushed = await asyncio.to_thread(buffer.flush, _core.remaining(deadline))
                delivered = flushed and delivered
        return delivered

    @property
    def pending_count(self) -> int:
        """As ``Scrawn.pending_count``."""
        return _core.buffered(self._tracker, self, "pending_count")

    @property
    def dropped_count(self) -> int:
        """As ``Scrawn.dropped_count``: accepted and never delivered (kept for repricing is delivered)."""
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
    ) -> ReservationRequest:
        """Hold ``amount`` of the user's available credit (see ``Scrawn.create_reservation``). Validated
        now; ``await`` the result for the :class:`~scrawn.AsyncReservation`, or use it directly:
        ``async with client.create_reservation("user_42", 500) as hold: ...``."""
        rpc = _wallet.create_reservation(user_id, amount, ttl_seconds, idempotency_key, description)

        async def create() -> AsyncReservation:
            data, key = await self._rpc(rpc)
            return AsyncReservation(self, data, key)

        return ReservationRequest(create)

    async def confirm_reservation(
        self, reservation_id: str | AsyncReservation, actual_amount: Number
    ) -> Confirmation[AsyncReservation]:
        """Take ``actual_amount`` (``0 ≤ actual ≤ held``) as one ledger entry (its id is
        ``transaction_id``) and release the rest of the hold."""
        rpc = _wallet.confirm_reservation(reservation_id, actual_amount)
        done = await self._rpc(rpc)
        reservation = self._bound(reservation_id, done.reservation)
        return Confirmation(reservation, done.transaction_id, done.balance)

    async def cancel_reservation(self, reservation_id: str | AsyncReservation) -> AsyncReservation:
        """Release a hold (a no-op when it is already cancelled or expired)."""
        data = await self._rpc(_wallet.cancel_reservation(reservation_id))
        return self._bound(reservation_id, data)

    async def extend_reservation(
        self, reservation_id: str | AsyncReservation, ttl_seconds: int
    ) -> AsyncReservation:
        """Move a hold's expiry to now + ``ttl_seconds`` (1–86,400)."""
        rpc = _wallet.extend_reservation(reservation_id, ttl_seconds)
        data = await self._rpc(rpc)
        return self._bound(reservation_id, data)

    async def list_reservations(
        self,
        user_id: str | None = None,
        *,
        active_only: bool = False,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ReservationPage[AsyncReservation]:
        """AsyncReservations newest first (every user's when ``user_id`` is ``None``); ``limit`` 1–500."""
        rpc = _wallet.list_reservations(user_id, active_only, limit, page_token)
        found, token = await self._rpc(rpc)
        return ReservationPage([AsyncReservation(self, data) for data in found], token)

    def _bound(self, given: object, data: _wallet.ReservationData) -> AsyncReservation:
        if isinstance(given, AsyncReservation) and given._client is self:
            given._apply(data)
            return given
        return AsyncReservation(self, data)

    # ------------------------------------------------------------------------------------------ usage

    async def record_usage(
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
        return await self._rpc(
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

    async def get_usage(
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
        return await self._rpc(_usage.get_usage(filter_, summary, limit, page_token))

    async def get_usage_summary(
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
        return await self._rpc(_usage.get_usage_summary(filter_))

    async def get_usage_series(
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
        return await self._rpc(_usage.get_usage_series(filter_, bucket, time_zone))

    async def collect_payment(
        self, user_id: str, *, top_up: Number | None = None, return_url: str | None = None
    ) -> str:
        """A checkout link (``{base}/checkout/{id}``) charging what ``user_id`` owes, rounded up to a whole
        minor unit, or a ``top_up`` of their prepaid wallet (int, Decimal or str, in the project's amount
        unit). The same link comes back while that checkout is open; a changed amount replaces it. Raises
        FailedPreconditionError when there is nothing to pay or no payment provider is configured."""
        return await self._rpc(_payments.collect_payment(user_id, top_up, return_url))

    async def void_event(
        self, *, event_id: str | None = None, idempotency_key: str | None = None, reason: str
    ) -> VoidedEvent:
        """Void a billed event (by ``event_id`` or ``idempotency_key``, exactly one) with a ``reason``: one
        reversing ledger entry credits its debit back, exactly once; the event stays, marked voided, and its
        idempotency key stays taken. Voiding it again answers ``already_voided=True`` with the first void.
        Raises NotFoundError when the key's project and mode hold no such event."""
        return await self._rpc(_void.void_event(event_id, idempotency_key, reason))

    async def list_models(
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
        return await self._rpc(_usage.list_models(provider, search, at, limit, page_token))

    async def calculate_cost(
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
        return await self._rpc(_usage.calculate_cost(usage, timestamp))

    # ----------------------------------------------------------------------------------- integrations

    @overload
    def ai_token_stream_consumer(
        self,
        chunks: Iterable[T] | AsyncIterable[T],
        *,
        fork: Literal[False] = False,
        **options: Unpack[StreamOptions[T]],
    ) -> Coroutine[object, None, AiStreamResult]: ...
    @overload
    def ai_token_stream_consumer(
        self,
        chunks: Iterable[T] | AsyncIterable[T],
        *,
        fork: Literal[True],
        **options: Unpack[StreamOptions[T]],
    ) -> AsyncForkedAiStream[T]: ...
    def ai_token_stream_consumer(
        self, chunks: Iterable[Any] | AsyncIterable[Any], *, fork: bool = False, **options: Any
    ) -> Any:
        """Bill a stream of token-usage chunks (:func:`scrawn.ai.ai_token_stream_consumer` with this
        client): ``await client.ai_token_stream_consumer(chunks, ...)``, or with ``fork=True`` an async
        iterator of the chunks."""
        from scrawn.ai import ai_token_stream_consumer

        return ai_token_stream_consumer(self, chunks, fork=fork, **options)  # type: ignore[call-overload]

    # ------------------------------------------------------------------------------------- machinery

    async def _rpc(self, rpc: Rpc[R]) -> R:
        """One validated unary call with the automatic retries (same request, same idempotency key)."""
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        result: R = await self._call(rpc.path, rpc.request, rpc.response_type, ctx, rpc.unpack)
        return result

    async def _call(
        self, path: str, request: Any, response_type: Any, ctx: ErrorContext, unpack: Any = None
    ) -> Any:
        retries = 0
        while True:
            ctx.attempts += 1
            try:
                response = await self._transport.unary(
                    path, request, response_type, self._headers, self._config.timeout
                )
                return response if unpack is None else unpack(response)
            except ScrawnError as error:
                delay = _core.retry_delay(self._config, error, retries)
                if delay is None:
                    raise
                retries += 1
                await asyncio.sleep(delay)

    async def _with_hook(
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
                return await attempt(ctx)
            except ScrawnError as error:
                if hook is None:
                    raise
                result = hook(error, ctx)
                if inspect.isawaitable(result):
                    await result
                # An event kept for repricing is stored: a retry would only be answered the same way.
                if not ctx._take_request() or _core.is_quarantined(error):
                    return handled(error)
