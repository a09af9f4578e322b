"""``track()``: a bounded in-memory buffer drained in batches by one background thread, with an optional
durable spool (a local SQLite file).

The caller's cost is validation plus a deque append under a lock (no network, no allocation beyond the
event). One buffer holds both kinds of event: debit events (``track(user_id=, debit=)``) and typed events
(``track(user_id=, event_type=, quantity=)``). The worker sends a batch through :func:`send_batch` —
debit events with ``event.v1.EventService/StreamEvents``, typed ones with ``usage.v1.UsageService/
TrackEvents`` — and settles each item:

- accepted or duplicate: delivered;
- kept for repricing by the server (:class:`~scrawn.errors.EventQuarantinedError`): delivered, never sent
  again; reported to ``on_error`` (or logged) so the application knows the configuration needs fixing;
- a transient per-item failure: re-queued, at most ``max_retries`` times;
- a permanent failure: reported to ``on_error``, whose ``context.retry()`` re-queues it once more; else it
  is *dropped* (counted in ``dropped_count``).

A failure of the whole call that is retryable (server down, timeouts) is retried with capped backoff for as
long as it lasts; events wait in the buffer (or the spool) meanwhile, and new ones are dropped — counted and
logged — once the buffer is full.

With a spool (:mod:`scrawn._spool`), an event is in SQLite before ``track()`` returns and leaves it once
acknowledged: a killed process's events are sent again, with the same keys, by the next one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final

from scrawn._config import ClientConfig
from scrawn._connect import Transport
from scrawn._core import is_quarantined
from scrawn._process_hooks import at_fork_child, register_exit
from scrawn._retry import ErrorContext, backoff, is_retryable
from scrawn._spool import SPOOL_DELETE_EVERY, SPOOL_MAX_EVENTS, SPOOL_REFILL, Spool
from scrawn._track_send import ItemOutcome, Sender, send_batch
from scrawn._tracked import AnyTracked
from scrawn.errors import (
    InternalError,
    ScrawnError,
)

log = logging.getLogger("scrawn.track")

OUTAGE_BACKOFF_MAX: Final = 30.0
_INF: Final = float("inf")


@dataclass(slots=True)
class _Item:
    seq: int
    event: AnyTracked
    attempts: int = 0  # per-item transient failures so far
    manual: int = 0  # retries granted by on_error's context.retry()


class Tracker:
    """The buffer and its worker thread. Thread-safe; one per client."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        sender: Sender | None = None,
        hook_loop: Callable[[], asyncio.AbstractEventLoop | None] | None = None,
    ) -> None:
        self._config = config
        self._max = config.buffer_size
        self._batch = config.batch_size
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._abort = threading.Event()
        self._queue: deque[_Item] = deque()
        self._seq = 0
        self._pending = 0
        self._dropped = 0  # accepted (or offered) and never delivered: see dropped_count
        self._dropped_reported = 0  # dropped_count when the last flush() completed
        self._burst = 0
        self._inflight_low: int | None = None
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._hook_loop = hook_loop
        self._transport: Transport | None = None
        self._send: Sender = sender or self._send_default
        self._spool: Spool | None = None
        self._memory_complete = True  # spool mode: every unsettled spool row is in memory or in flight
        self._loaded_through = 0
        self._undeleted: list[int] = []  # worker only: settled spool rows not yet deleted
        if config.spool_path is not None:
            self._spool = Spool(config.spool_path, fsync=config.spool_fsync)
            self._pending = self._spool.count()
            self._seq = self._spool.last_seq()
            self._memory_complete = self._pending == 0
            self._loaded_through = 0 if self._pending else self._seq
            if self._pending:
                log.info(
                    "scrawn: %d tracked events from an earlier run are in the spool; sending them",
                    self._pending,
                )
                self._start()
        register_exit(self)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=at_fork_child(self))

    # ------------------------------------------------------------------------------------ caller side

    def put(self, event: AnyTracked) -> bool:
        """Accept ``event`` (``True``) or drop it because the buffer is full (``False``)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("track() on a closed Scrawn client")
            if self._spool is not None:
                if self._pending >= SPOOL_MAX_EVENTS:
                    return self._drop()
                try:
                    seq = self._spool.insert(event)
                except sqlite3.Error as e:  # disk full, file removed...: not durable, so not accepted
                    if self._burst == 0:
                        log.error("scrawn: cannot write to the spool %s (%s)", self._spool.path, e)
                    return self._drop()
                self._seq = seq
                self._pending += 1
                if self._memory_complete and len(self._queue) < self._max:
                    self._queue.append(_Item(seq, event))
                    self._loaded_through = seq
                else:
                    self._memory_complete = False
            else:
                if len(self._queue) >= self._max:
                    return self._drop()
                self._seq += 1
                self._queue.append(_Item(self._seq, event))
                self._pending += 1
            if self._burst:
                log.warning("scrawn: track() buffer has room again after dropping %d events", self._burst)
                self._burst = 0
            if self._thread is None:
                self._start()
            full = len(self._queue) >= self._batch
        if full and not self._wake.is_set():
            self._wake.set()
        return True

    def _drop(self) -> bool:
        self._dropped += 1
        self._burst += 1
        if self._burst == 1:
            log.warning(
                "scrawn: track() buffer is full (%d events waiting); dropping events until it drains "
                "(see dropped_count)",
                self._pending,
            )
        return False

    @property
    def pending_count(self) -> int:
        """Events accepted and not yet settled (delivered, or failed for good)."""
        return self._pending

    @property
    def dropped_count(self) -> int:
        """Events never delivered: refused because the buffer (or spool) was full, failed for good (a
        permanent error that ``on_error`` did not retry), or left in memory by ``close()`` without a spool.
        Events the server kept for repricing were delivered and are not counted."""
        return self._dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is settled. ``True`` when they are and no event
        was dropped since the previous completed ``flush()`` (or since the buffer was made); ``False`` on
        timeout, when something was dropped meanwhile, and at once when called on the worker thread (e.g.
        from ``on_error``: it would wait for itself)."""
        if threading.current_thread() is self._thread:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._seq
            if self._thread is None and self._low_watermark() <= target:
                self._start()
        self._wake.set()
        with self._settled:
            while self._low_watermark() <= target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(0.5 if remaining is None else min(remaining, 0.5))
                self._wake.set()
            dropped, self._dropped_reported = self._dropped - self._dropped_reported, self._dropped
        return dropped == 0

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting events, deliver what is buffered (waiting at most ``timeout`` seconds; ``None``:
        the client's ``exit_timeout``), stop the worker. ``False`` if events were left undelivered."""
        if timeout is None:
            timeout = self._config.exit_timeout
        with self._lock:
            if self._closed and self._thread is None:
                return True
            self._closed = True
            if threading.current_thread() is self._thread:  # from on_error: stop after this batch
                self._stopping = True
                self._abort.set()
                return False
        delivered = self.flush(timeout)
        with self._lock:
            self._stopping = True
            thread, pending = self._thread, self._pending
        self._abort.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout=5)
        if not delivered and pending:
            where = f"kept in the spool {self._spool.path}" if self._spool else "lost"
            log.warning("scrawn: closed with %d tracked events not delivered (%s)", pending, where)
        if self._spool is None and (thread is None or not thread.is_alive()):
            with self._lock:  # what is still in memory now is lost: dropped
                self._dropped += self._pending
                self._pending = 0
                self._queue.clear()
        if self._spool is not None:
            self._spool.close()
        if self._transport is not None:
            self._transport.close()
        return delivered

    # ---------------------------------------------------------------------------------------- worker

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="scrawn-track", daemon=True)
        self._thread = thread
        thread.start()

    def _low_watermark(self) -> float:
        """The lowest sequence number not yet settled (lock held)."""
        low = _INF
        if self._queue:
            low = self._queue[0].seq
        if self._inflight_low is not None:
            low = min(low, self._inflight_low)
        if not self._memory_complete:
            low = min(low, self._loaded_through + 1)
        return low

    def _send_default(self, events: Sequence[AnyTracked]) -> list[ItemOutcome]:
        if self._transport is None:
            self._transport = Transport(self._config.base_url, http=self._config.worker_http)
        return send_batch(self._transport, self._config, events)

    def _run(self) -> None:
        while not self._abort.is_set():
            self._wake.wait(self._config.flush_interval)
            self._wake.clear()
            while not self._abort.is_set():
                batch = self._take()
                if not batch:
                    break
                try:
                    self._deliver(batch)
                except Exception:  # the worker must survive anything
                    log.exception("scrawn: unexpected error in the track() worker")
                    self._requeue(batch, [])
                    self._abort.wait(1.0)
            self._delete_delivered()  # caught up: clear the spool of what was acknowledged
            with self._lock:
                if self._stopping:
                    break
        self._delete_delivered()

    def _delete_delivered(self) -> None:
        """Delete settled events from the spool. Batched (not once per StreamEvents call) because a
        delete holds SQLite's write lock, which a concurrent ``track()`` insert has to wait for; a crash
        before it runs only means those events are sent again and answered as duplicates."""
        if self._spool is None or not self._undeleted:
            return
        seqs, self._undeleted = self._undeleted, []
        try:
            self._spool.delete(seqs)
        except sqlite3.Error:
            log.exception(
                "scrawn: could not delete delivered events from the spool (they will be sent again and "
                "counted as duplicates)"
            )

    def _take(self) -> list[_Item]:
        with self._lock:
            if not self._queue and not self._memory_complete and self._spool is not None:
                self._refill()
            n = min(self._batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            if batch:
                self._inflight_low = batch[0].seq
            return batch

    def _refill(self) -> None:
        assert self._spool is not None
        limit = min(SPOOL_REFILL, self._max)
        rows, bad = self._spool.load(self._loaded_through, limit)
        self._dropped += bad  # lock held; unreadable rows are gone from the file: settled, never delivered
        self._pending -= bad
        for seq, event in rows:
            self._queue.append(_Item(seq, event))
            self._loaded_through = seq
        if len(rows) + bad < limit:
            self._memory_complete = True
            self._loaded_through = max(self._loaded_through, self._seq)
            if not self._queue:  # rows vanished (unreadable): recount what is really there
                self._delete_delivered()
                self._pending = self._spool.count()
                self._settled.notify_all()

    def _deliver(self, batch: list[_Item]) -> None:
        events = [item.event for item in batch]
        outage = 0
        while True:
            try:
                outcomes = self._send(events)
                if len(outcomes) != len(events):
                    raise InternalError(f"sender returned {len(outcomes)} outcomes for {len(events)} events")
                break
            except ScrawnError as e:
                if not is_retryable(e):
                    outcomes = [ItemOutcome(e)] * len(events)
                    break
                if outage == 0:
                    log.warning(
                        "scrawn: delivering %d tracked events failed (%s); retrying with backoff",
                        len(events),
                        e.message,
                    )
                delay = backoff(outage, self._config.backoff_base, OUTAGE_BACKOFF_MAX, e)  # >= Retry-After
                outage += 1
                if self._abort.wait(delay):  # closing while the server is unreachable: keep them
                    self._requeue(batch, [])
                    return
        if outage:
            log.warning("scrawn: tracked events delivered again after %d failed attempts", outage)
        self._settle(batch, outcomes)

    def _settle(self, batch: list[_Item], outcomes: list[ItemOutcome]) -> None:
        done: list[_Item] = []
        requeue: list[_Item] = []
        failed: list[tuple[_Item, ScrawnError]] = []
        kept: list[tuple[_Item, ScrawnError]] = []
        for item, outcome in zip(batch, outcomes, strict=True):
            error = outcome.error
            if error is None:
                done.append(item)
            elif is_quarantined(error):  # delivered: stored by the server for repricing
                done.append(item)
                kept.append((item, error))
            elif is_retryable(error) and item.attempts < self._config.max_retries:
                item.attempts += 1
                requeue.append(item)
            else:
                failed.append((item, error))
        if kept:
            self._report_kept(kept)
        dropped = self._report(failed, done, requeue) if failed else 0
        if done and self._spool is not None:
            self._undeleted.extend(item.seq for item in done)
            if len(self._undeleted) >= SPOOL_DELETE_EVERY:
                self._delete_delivered()
        self._requeue(requeue, done, dropped)
        if requeue:
            self._abort.wait(
                backoff(max(i.attempts for i in requeue), self._config.backoff_base, self._config.backoff_max)
            )

    def _context(self, item: _Item) -> ErrorContext:
        ctx = ErrorContext("track", item.event.idempotency_key, item.event.user_id, self._config.max_retries)
        ctx.attempts = item.attempts + item.manual + 1
        ctx.retry_count = item.manual
        return ctx

    def _report_kept(self, kept: list[tuple[_Item, ScrawnError]]) -> None:
        """Tell the application about events kept for repricing. ``context.retry()`` is ignored: the event
        is stored, and sending it again would only be answered the same way."""
        self._tell(
            kept,
            "were kept for repricing by the server (delivered, not billed until `scrawn events reprice`)",
            "an event kept for repricing",
        )

    def _report(
        self, failed: list[tuple[_Item, ScrawnError]], done: list[_Item], requeue: list[_Item]
    ) -> int:
        """Report events that failed for good; those not re-queued by ``context.retry()`` are settled
        as dropped. Returns how many were dropped."""
        retries = self._tell(failed, "failed for good (dropped)", "a tracked event failure")
        if retries is None:
            done.extend(item for item, _ in failed)
            return len(failed)
        dropped = 0
        for item, retry_count in retries:
            if retry_count is not None:
                item.manual = retry_count
                requeue.append(item)
            else:
                done.append(item)
                dropped += 1
        return dropped

    def _tell(
        self, reports: list[tuple[_Item, ScrawnError]], outcome: str, handling: str
    ) -> list[tuple[_Item, int | None]] | None:
        """Each event's error to ``on_error``: per event, its retry count if the hook asked for another
        attempt (``context.retry()``), else ``None``. ``None`` without a hook: the first is logged."""
        hook = self._config.on_error
        if hook is None:
            item, error = reports[0]
            log.warning(
                "scrawn: %d tracked events %s; first (idempotency key %s): %s",
                len(reports),
                outcome,
                item.event.idempotency_key,
                error.message,
            )
            return None
        retries: list[tuple[_Item, int | None]] = []
        for item, error in reports:
            ctx = self._context(item)
            try:
                self._call_hook(hook, error, ctx)
            except Exception:
                log.exception("scrawn: on_error raised while handling %s", handling)
            retries.append((item, ctx.retry_count if ctx._take_request() else None))
        return retries

    def _call_hook(self, hook: Callable[..., Any], error: ScrawnError, ctx: ErrorContext) -> None:
        result = hook(error, ctx)
        if not inspect.isawaitable(result):
            return
        loop = self._hook_loop() if self._hook_loop is not None else None
        if loop is not None and loop.is_running() and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(_await(result), loop)
            try:
                future.result(timeout=30)
            except FutureTimeout:
                log.warning("scrawn: async on_error did not finish within 30 s")
            return
        asyncio.run(_await(result))

    def _requeue(self, items: list[_Item], done: list[_Item], dropped: int = 0) -> None:
        """Put ``items`` back at the front (in order) and count ``done`` as settled, ``dropped`` of them
        never delivered (lock taken here)."""
        items.sort(key=lambda i: i.seq)
        with self._lock:
            self._queue.extendleft(reversed(items))
            self._pending -= len(done)
            self._dropped += dropped
            self._inflight_low = None
            self._settled.notify_all()

    # --------------------------------------------------------------------------------------- process

    def _after_fork_in_child(self) -> None:
        """A forked child starts with an empty buffer and no worker: the parent delivers what it had."""
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._queue.clear()
        self._thread = None
        self._transport = None
        self._inflight_low = None
        self._pending = 0
        if self._spool is not None:  # a spool belongs to the parent; the child keeps none
            self._spool = None
            self._memory_complete = True
            log.warning(
                "scrawn: a forked child cannot share the parent's spool; its tracked events are "
                "kept in memory only (create the client after forking to spool them)"
            )

    def _at_exit(self) -> None:
        if self._closed and self._thread is None:
            return
        try:
            self.close(self._config.exit_timeout)
        except Exception:  # never fail interpreter exit
            log.exception("scrawn: flushing tracked events at exit failed")


async def _await(awaitable: Any) -> None:
    await awaitable


__all__ = ["Tracker"]
