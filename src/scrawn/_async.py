"""The asyncio client: :class:`AsyncScrawn`, the same calls as :class:`~scrawn.Scrawn` awaited."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _ai_events, _calls, _config, _core, _retry, _wallet, _wallet_results
from scrawn._calls import EventCall
from scrawn._client_base import AsyncClient
from scrawn._config import ClientConfig
from scrawn._connect import AsyncTransport
from scrawn._core import EventResult
from scrawn._events import AsyncEvents
from scrawn._integrations import Integrations
from scrawn._methods import async_call, async_event_call
from scrawn._retry import ErrorContext, ErrorHook, Rpc
from scrawn._track import Tracker
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

    from scrawn._ai_fork import AsyncForkedAiStream
    from scrawn._ai_stream import AiStreamResult
    from scrawn.types import Number, StreamOptions

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class AsyncScrawn(AsyncClient, Integrations):
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
        self._config: ClientConfig = _config.resolve_config(
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
        self._headers = _config.headers(self._config)
        self._tracker_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracker: Tracker | None = self._new_tracker() if self._config.spool_path else None
        self.wallet = AsyncWallet(self)
        """Prepaid credit: ``await client.wallet.balance(...)``, ``credit``, ``debit``, … (see
        :class:`~scrawn.AsyncWallet`)."""

    # ----------------------------------------------------------------------------------------- misc

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
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        self._closed = True
        if self._tracker is not None:
            delivered = await asyncio.to_thread(self._tracker.close, timeout)
        if self._ai_state is not None:  # ended fork streams still billing, then the track_ai buffer
            forks = self._config.exit_timeout if deadline is None else _config.remaining(deadline)
            delivered = await _ai_events.wait_forks_async(self, forks) and delivered
            closed = await asyncio.to_thread(_ai_events.close_buffer, self, _config.remaining(deadline))
            delivered = closed and delivered
        await self._transport.close()
        return delivered

    aclose = close

    # ------------------------------------------------------------------ calls (defined in scrawn._calls)

    basic_usage_event_consumer = async_event_call(_calls.basic_usage_event_consumer)
    create_event = async_event_call(_calls.create_event)
    record_usage = async_call(_calls.record_usage)
    get_usage = async_call(_calls.get_usage)
    get_usage_summary = async_call(_calls.get_usage_summary)
    get_usage_series = async_call(_calls.get_usage_series)
    collect_payment = async_call(_calls.collect_payment)
    portal_link = async_call(_calls.portal_link)
    void_event = async_call(_calls.void_event)
    list_models = async_call(_calls.list_models)
    calculate_cost = async_call(_calls.calculate_cost)

    # ------------------------------------------------------------------------------------------- track

    @functools.cached_property
    def events(self) -> AsyncEvents:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``await client.events.flush()``, ``pending_count``,
        ``dropped_count``."""
        return AsyncEvents(self)

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
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        if self._tracker is not None:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            delivered = await asyncio.to_thread(self._tracker.flush, timeout)
        if self._ai_state is not None:
            delivered = await _ai_events.wait_forks_async(self, _config.remaining(deadline)) and delivered
            buffer = _ai_events.existing_buffer(self)
            if buffer is not None:
                flushed = await asyncio.to_thread(buffer.flush, _config.remaining(deadline))
                delivered = flushed and delivered
        return delivered

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

    def _bound(self, given: object, data: _wallet_results.ReservationData) -> AsyncReservation:
        if isinstance(given, AsyncReservation) and given._client is self:
            given._apply(data)
            return given
        return AsyncReservation(self, data)

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
        return await self._attempts(rpc, ctx)

    async def _attempts(self, rpc: Rpc[R], ctx: ErrorContext) -> R:
        retries = 0
        while True:
            ctx.attempts += 1
            try:
                response = await self._transport.unary(
                    rpc.path, rpc.request, rpc.response_type, self._headers, self._config.timeout
                )
                return rpc.unpack(response)
            except ScrawnError as error:
                delay = _retry.delay_or_raise(self._config, error, retries)
                retries += 1
                await asyncio.sleep(delay)

    async def _event(self, call: EventCall[T]) -> EventResult:
        rpc = call.rpc
        hook = call.on_error or self._config.on_error
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        while True:
            try:
                return call.finish(await self._attempts(rpc, ctx))
            except ScrawnError as error:
                if hook is None:
                    raise
                result = hook(error, ctx)
                if inspect.isawaitable(result):
                    await result
                # An event kept for repricing is stored: a retry would only be answered the same way.
                if not ctx._take_request() or _core.is_quarantined(error):
                    return call.handled(error)
