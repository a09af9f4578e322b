"""The asyncio client: :class:`AsyncScrawn`, the same calls as :class:`~scrawn.Scrawn` awaited (written
once in :mod:`scrawn._client_base`; :class:`~scrawn._client_base.AsyncClient` runs them)."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _wallet
from scrawn._client_base import AsyncClient
from scrawn._connect import AsyncTransport
from scrawn._events import AsyncEvents
from scrawn._integrations import Integrations
from scrawn._methods import run_async
from scrawn._retry import ErrorHook
from scrawn._wallet_client import (
    AsyncReservation,
    AsyncWallet,
    Confirmation,
    ReservationPage,
)

if TYPE_CHECKING:
    from typing import Unpack

    import httpx

    from scrawn._ai_fork import AsyncForkedAiStream
    from scrawn._ai_stream import AiStreamResult, Chunks
    from scrawn.types import Number, StreamOptions

T = TypeVar("T")


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
        # the background delivery thread cannot use an AsyncClient: sync_http_client is its own
        self._setup(locals(), AsyncTransport, http, AsyncTransport.check_worker_client(sync_http_client))
        self.wallet = AsyncWallet(self)
        """Prepaid credit: ``await client.wallet.balance(...)``, ``credit``, ``debit``, … (see
        :class:`~scrawn.AsyncWallet`)."""

    @functools.cached_property
    def events(self) -> AsyncEvents:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``await client.events.flush()``, ``pending_count``,
        ``dropped_count``."""
        return AsyncEvents(self)

    # ------------------------------------------ wallets and holds (the procedures in scrawn._client_base)

    async def confirm_reservation(
        self, reservation_id: str | AsyncReservation, actual_amount: Number
    ) -> Confirmation[AsyncReservation]:
        """Take ``actual_amount`` (``0 ≤ actual ≤ held``) as one ledger entry (its id is
        ``transaction_id``) and release the rest of the hold."""
        return await run_async(self._confirm_steps(reservation_id, actual_amount))

    async def cancel_reservation(self, reservation_id: str | AsyncReservation) -> AsyncReservation:
        """Release a hold (a no-op when it is already cancelled or expired)."""
        rpc = _wallet.cancel_reservation(reservation_id)
        return await run_async(self._update_steps(reservation_id, rpc))

    async def extend_reservation(
        self, reservation_id: str | AsyncReservation, ttl_seconds: int
    ) -> AsyncReservation:
        """Move a hold's expiry to now + ``ttl_seconds`` (1–86,400)."""
        rpc = _wallet.extend_reservation(reservation_id, ttl_seconds)
        return await run_async(self._update_steps(reservation_id, rpc))

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
        return await run_async(self._page_steps(rpc))

    # ----------------------------------------------------------------------------------- integrations

    @overload
    def ai_token_stream_consumer(
        self, chunks: Chunks[T], *, fork: Literal[False] = False, **options: Unpack[StreamOptions[T]]
    ) -> Coroutine[object, None, AiStreamResult]: ...
    @overload
    def ai_token_stream_consumer(
        self, chunks: Chunks[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
    ) -> AsyncForkedAiStream[T]: ...
    def ai_token_stream_consumer(
        self, chunks: Iterable[Any] | AsyncIterable[Any], *, fork: bool = False, **options: Any
    ) -> Any:
        """Bill a stream of token-usage chunks (:func:`scrawn.ai.ai_token_stream_consumer` with this
        client): ``await client.ai_token_stream_consumer(chunks, ...)``, or with ``fork=True`` an async
        iterator of the chunks."""
        return self._stream_consumer(chunks, fork, options)
