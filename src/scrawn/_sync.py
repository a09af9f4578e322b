"""The blocking client: :class:`Scrawn` and the :func:`scrawn` factory. Its calls and procedures are
written once in :mod:`scrawn._client_base` (:class:`~scrawn._client_base.SyncClient` runs them)."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn import _wallet
from scrawn._client_base import SyncClient
from scrawn._connect import Transport
from scrawn._events import Events
from scrawn._integrations import Integrations
from scrawn._methods import run
from scrawn._retry import ErrorHook
from scrawn._wallet_client import Confirmation, Reservation, ReservationPage, Wallet

if TYPE_CHECKING:
    from typing import Unpack

    import httpx

    from scrawn._ai_fork import AsyncForkedAiStream, ForkedAiStream
    from scrawn._ai_stream import AiStreamResult
    from scrawn.types import ClientOptions, Number, StreamOptions

T = TypeVar("T")


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
        self._setup(
            locals(), Transport, http, http
        )  # httpx.Client is thread-safe: track()'s thread shares it
        self.wallet = Wallet(self)
        """Prepaid credit: ``balance``, ``credit``, ``debit``, ``transactions``, ``settings``,
        ``update_settings`` (see :class:`~scrawn.Wallet`)."""

    @functools.cached_property
    def events(self) -> Events:
        """Typed events in the shape of ``settle.events``: ``client.events.track(user_id=...,
        event_type=..., quantity=...)``, ``client.events.flush()``, ``pending_count``, ``dropped_count``."""
        return Events(self)

    # ------------------------------------------ wallets and holds (the procedures in scrawn._client_base)

    def confirm_reservation(
        self, reservation_id: str | Reservation, actual_amount: Number
    ) -> Confirmation[Reservation]:
        """Take ``actual_amount`` (``0 ≤ actual ≤ held``) as one ledger entry (its id is
        ``transaction_id``) and release the rest of the hold."""
        return run(self._confirm_steps(reservation_id, actual_amount))

    def cancel_reservation(self, reservation_id: str | Reservation) -> Reservation:
        """Release a hold (a no-op when it is already cancelled or expired)."""
        return run(self._update_steps(reservation_id, _wallet.cancel_reservation(reservation_id)))

    def extend_reservation(self, reservation_id: str | Reservation, ttl_seconds: int) -> Reservation:
        """Move a hold's expiry to now + ``ttl_seconds`` (1–86,400)."""
        rpc = _wallet.extend_reservation(reservation_id, ttl_seconds)
        return run(self._update_steps(reservation_id, rpc))

    def list_reservations(
        self,
        user_id: str | None = None,
        *,
        active_only: bool = False,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> ReservationPage[Reservation]:
        """Reservations newest first (every user's when ``user_id`` is ``None``); ``limit`` 1–500."""
        return run(self._page_steps(_wallet.list_reservations(user_id, active_only, limit, page_token)))

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
        return self._stream_consumer(chunks, fork, options)


def scrawn(
    api_key: str | None = None, base_url: str | None = None, **options: Unpack[ClientOptions]
) -> Scrawn:
    """The TS SDK's factory: ``scrawn(api_key=..., base_url=...)`` is ``Scrawn(api_key, base_url)``."""
    return Scrawn(api_key, base_url, **options)
