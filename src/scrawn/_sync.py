"""The blocking client: :class:`Scrawn` and the :func:`scrawn` factory."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import AsyncIterable, Coroutine, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _ai_events, _calls, _config, _core, _retry, _wallet, _wallet_results
from scrawn._calls import EventCall
from scrawn._client_base import SyncClient
from scrawn._config import ClientConfig
from scrawn._connect import Transport
from scrawn._core import EventResult
from scrawn._events import Events
from scrawn._integrations import Integrations
from scrawn._methods import sync_call, sync_event_call
from scrawn._retry import ErrorContext, ErrorHook, Rpc
from scrawn._track import Tracker
from scrawn._wallet_client import Confirmation, Reservation, ReservationPage, Wallet
from scrawn.errors import ScrawnError

if TYPE_CHECKING:
    from typing import Unpack

    import httpx

    from scrawn._ai_fork import AsyncForkedAiStream, ForkedAiStream
    from scrawn._ai_stream import AiStreamResult
    from scrawn.types import ClientOptions, Number, StreamOptions

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class Scrawn(SyncClient, Integrations):
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
            worker_http=http,  # httpx.Client is thread-safe: track()'s thread shares it
        )
        self._transport = Transport(self._config.base_url, http=http)
        self._headers = _config.headers(self._config)
        self._tracker_lock = threading.Lock()
        self._tracker: Tracker | None = Tracker(self._config) if self._config.spool_path else None
        self.wallet = Wallet(self)
        """Prepaid credit: ``balance``, ``credit``, ``debit``, ``transactions``, ``settings``,
        ``update_settings`` (see :class:`~scrawn.Wallet`)."""

    # ----------------------------------------------------------------------------------------- misc

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
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        self._closed = True
        if self._tracker is not None:
            delivered = self._tracker.close(timeout)
        if self._ai_state is not None:  # ended fork streams still billing, then the track_ai buffer
            forks = self._config.exit_timeout if deadline is None else _config.remaining(deadline)
            delivered = _ai_events.wait_forks_sync(self, forks) and delivered
            delivered = _ai_events.close_buffer(self, _config.remaining(deadline)) and delivered
        self._transport.close()
        return delivered

    # ------------------------------------------------------------------ calls (defined in scrawn._calls)

    basic_usage_event_consumer = sync_event_call(_calls.basic_usage_event_consumer)
    create_event = sync_event_call(_calls.create_event)
    record_usage = sync_call(_calls.record_usage)
    get_usage = sync_call(_calls.get_usage)
    get_usage_summary = sync_call(_calls.get_usage_summary)
    get_usage_series = sync_call(_calls.get_usage_series)
    collect_payment = sync_call(_calls.collect_payment)
    portal_link = sync_call(_calls.portal_link)
    void_event = sync_call(_calls.void_event)
    list_models = sync_call(_calls.list_models)
    calculate_cost = sync_call(_calls.calculate_cost)

    # ------------------------------------------------------------------------------------------- track

    @functools.cached_property
    def events(self) -> Events:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``client.events.flush()``, ``pending_count``, ``dropped_count``."""
        return Events(self)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every event tracked — by ``track()``, the middleware, ``track_ai()`` or a wrapped
        LLM client — before this call is settled: delivered (kept for repricing counts as delivered) or
        failed for good. Returns ``False`` if ``timeout`` seconds passed first, or if any event was dropped
        since the previous completed ``flush()`` (see :attr:`dropped_count`)."""
        timeout = _config.check_wait(timeout)
        deadline = _config.deadline(timeout)
        delivered = True
        if self._tracker is not None:
            delivered = self._tracker.flush(timeout)
        if self._ai_state is not None:
            delivered = _ai_events.wait_forks_sync(self, _config.remaining(deadline)) and delivered
            buffer = _ai_events.existing_buffer(self)
            if buffer is not None:
                delivered = buffer.flush(_config.remaining(deadline)) and delivered
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

    def _bound(self, given: object, data: _wallet_results.ReservationData) -> Reservation:
        if isinstance(given, Reservation) and given._client is self:
            given._apply(data)
            return given
        return Reservation(self, data)

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
        return self._attempts(rpc, ctx)

    def _attempts(self, rpc: Rpc[R], ctx: ErrorContext) -> R:
        """One logical call: automatic retries with backoff on retryable failures only. ``rpc.unpack``
        turns the response into the result and may raise (a failed batch item), retried by the same rules."""
        retries = 0
        while True:
            ctx.attempts += 1
            try:
                response = self._transport.unary(
                    rpc.path, rpc.request, rpc.response_type, self._headers, self._config.timeout
                )
                return rpc.unpack(response)
            except ScrawnError as error:
                delay = _retry.delay_or_raise(self._config, error, retries)
                retries += 1
                time.sleep(delay)

    def _event(self, call: EventCall[T]) -> EventResult:
        rpc = call.rpc
        hook = call.on_error or self._config.on_error
        ctx = ErrorContext(rpc.operation, rpc.idempotency_key, rpc.user_id, self._config.max_retries)
        while True:
            try:
                return call.finish(self._attempts(rpc, ctx))
            except ScrawnError as error:
                if hook is None:
                    raise
                _retry.run_sync_hook(hook, error, ctx)
                # An event kept for repricing is stored: a retry would only be answered the same way.
                if not ctx._take_request() or _core.is_quarantined(error):
                    return call.handled(error)


def scrawn(
    api_key: str | None = None, base_url: str | None = None, **options: Unpack[ClientOptions]
) -> Scrawn:
    """The TS SDK's factory: ``scrawn(api_key=..., base_url=...)`` is ``Scrawn(api_key, base_url)``."""
    return Scrawn(api_key, base_url, **options)
