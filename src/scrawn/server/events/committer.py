"""Group commit (DESIGN §5): events from concurrent calls are written in one transaction per flush,
and each caller is answered only after the flush holding its events has committed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from scrawn.errors import UnavailableError
from scrawn.server.db.engine import Database
from scrawn.server.events.batch import store_batch
from scrawn.server.events.types import Outcome, PricedEvent

log = logging.getLogger("scrawn.events")


class CommitObserver(Protocol):
    """Told about every flush (metrics): once per flush, never per event."""

    def flushed(self, size: int, seconds: float, outcomes: Sequence[Outcome], /) -> None: ...

    def flush_failed(self, size: int, seconds: float, /) -> None: ...


class GroupCommitter:
    def __init__(
        self, db: Database, *, max_batch: int = 2000, observer: CommitObserver | None = None
    ) -> None:
        self._db = db
        self._max_batch = max_batch
        self._observer = observer
        self._pending: list[tuple[Sequence[PricedEvent], asyncio.Future[list[Outcome]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scrawn-group-commit")

    async def submit(self, events: Sequence[PricedEvent]) -> list[Outcome]:
        if self._closing or self._task is None:
            raise UnavailableError("Server is shutting down")
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._pending.append((events, future))
        self._wake.set()
        # Shielded: a caller that goes away must not cancel a flush other callers wait on.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Stop taking events and flush everything already submitted."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._flush(self._take())
            if self._closing and not self._pending:
                return

    def _take(self) -> list[tuple[Sequence[PricedEvent], asyncio.Future[list[Outcome]]]]:
        taken: list[tuple[Sequence[PricedEvent], asyncio.Future[list[Outcome]]]] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0][0]) <= self._max_batch):
            item = self._pending.pop(0)
            taken.append(item)
            size += len(item[0])
        return taken

    async def _flush(self, taken: list[tuple[Sequence[PricedEvent], asyncio.Future[list[Outcome]]]]) -> None:
        flat = [ev for events, _ in taken for ev in events]
        started = time.perf_counter()
        try:
            async with self._db.write() as conn:
                outcomes = await store_batch(conn, flat)
        except Exception:
            elapsed = time.perf_counter() - started
            log.exception("flush of %d events failed", len(flat))
            for _, future in taken:
                if not future.done():
                    future.set_exception(
                        UnavailableError("Storage is unavailable; retry with the same idempotency key")
                    )
            if self._observer is not None:  # after the callers are answered: it must never hold them up
                self._observer.flush_failed(len(flat), elapsed)
            return
        elapsed = time.perf_counter() - started
        start = 0
        for events, future in taken:
            if not future.done():
                future.set_result(outcomes[start : start + len(events)])
            start += len(events)
        if self._observer is not None:
            self._observer.flushed(len(flat), elapsed, outcomes)
