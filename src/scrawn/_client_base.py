"""What every client is, below the AI machinery, the middleware and the typed-events helpers.

:class:`ClientBase` holds what both clients share and do without I/O: the configuration, the
``track()`` buffer, the AI state (created on first use) and the counters. :class:`SyncClient` and
:class:`AsyncClient` are the interfaces :mod:`scrawn.ai`, :mod:`scrawn.middleware` and
:mod:`scrawn._events` depend on — :class:`scrawn.Scrawn` and :class:`scrawn.AsyncScrawn` implement them —
so nothing under the clients imports the clients, and the SDK's imports form no circle. They are classes
rather than Protocols because the integrations check at run time that they were given a client, and which
flavour (``isinstance``)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar, overload

from scrawn import _tracked
from scrawn._calls import EventCall
from scrawn._config import ClientConfig
from scrawn._connect import AsyncTransport, Transport
from scrawn._core import EventResult, UsageType
from scrawn._retry import Rpc
from scrawn._track import Tracker

if TYPE_CHECKING:
    from scrawn.types import DebitInput, JSONObject, Number

R = TypeVar("R")
T = TypeVar("T")


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


_AI_STATE_LOCK = threading.Lock()  # two threads' first AI call must share one state


class ClientBase:
    """Shared by :class:`scrawn.Scrawn` and :class:`scrawn.AsyncScrawn`."""

    _config: ClientConfig
    _headers: dict[str, str]
    _tracker: Tracker | None
    _tracker_lock: threading.Lock
    _closed = False  # set by close(): track() then raises
    _ai_state: AiState | None = None

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


class SyncClient(ClientBase):
    """What the integrations use of :class:`scrawn.Scrawn`."""

    _transport: Transport

    def flush(self, timeout: float | None = None) -> bool:
        raise NotImplementedError

    def _rpc(self, rpc: Rpc[R]) -> R:
        """Send one call with the automatic retries (the client's I/O)."""
        raise NotImplementedError

    def _event(self, call: EventCall[T]) -> EventResult:
        """Send one event call, its failures through ``on_error`` (the client's I/O)."""
        raise NotImplementedError


class AsyncClient(ClientBase):
    """What the integrations use of :class:`scrawn.AsyncScrawn`."""

    _transport: AsyncTransport

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        raise NotImplementedError

    async def _rpc(self, rpc: Rpc[R]) -> R:
        raise NotImplementedError

    async def _event(self, call: EventCall[T]) -> EventResult:
        raise NotImplementedError


AnyClient = SyncClient | AsyncClient
