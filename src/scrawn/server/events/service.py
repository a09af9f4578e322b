"""Ingest: price validated events against the project's configuration, then hand them to group commit.
Events the configuration cannot price yet are kept in the quarantine instead (events/quarantine.py)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from scrawn.errors import ScrawnError, UnavailableError
from scrawn.server.db.engine import Database
from scrawn.server.events import late
from scrawn.server.events.committer import GroupCommitter
from scrawn.server.events.intake import EventInput
from scrawn.server.events.price import Pricing, Unpriceable, load_pricing, needs_reading, price_event
from scrawn.server.events.quarantine import service as quarantine
from scrawn.server.events.repository import (
    UsageTotal as UsageTotal,  # the portal's reads, through this service
)
from scrawn.server.events.repository import usage_by_model as usage_by_model
from scrawn.server.events.repository import usage_by_span as usage_by_span
from scrawn.server.events.types import Outcome, PricedEvent
from scrawn.server.keys.service import Caller

log = logging.getLogger("scrawn.events")


class QuarantineObserver(Protocol):
    """Told how many events were newly kept, by reason code (metrics)."""

    def quarantined(self, by_reason: Counter[str], /) -> None: ...


class EventService:
    def __init__(
        self, db: Database, committer: GroupCommitter, observer: QuarantineObserver | None = None
    ) -> None:
        self._db = db
        self._committer = committer
        self._observer = observer

    async def ingest(
        self, caller: Caller, inputs: Sequence[EventInput], *, window_checked: bool = False
    ) -> list[Outcome]:
        """Price and store ``inputs``; one outcome each, in order. Durable when this returns."""
        if not window_checked and late.any_old(inputs):  # rare: the project's late-event window applies
            return await late.without_late(
                self._db, caller, inputs, lambda rest: self.ingest(caller, rest, window_checked=True)
            )
        pricing = Pricing()
        if needs_reading(inputs):  # amounts alone need no read
            async with self._db.read() as conn:
                pricing = await load_pricing(conn, caller.project_id, inputs)
        outcomes: list[Outcome | None] = [None] * len(inputs)
        priced: list[PricedEvent] = []
        slots: list[int] = []
        held: list[quarantine.Held] = []
        held_slots: list[int] = []
        for i, inp in enumerate(inputs):
            try:
                priced.append(price_event(caller.project_id, caller.mode, inp, pricing))
                slots.append(i)
            except Unpriceable as e:
                held.append(quarantine.Held(inp, inp.idempotency_key or f"srv_{uuid.uuid4()}", e))
                held_slots.append(i)
            except ScrawnError as e:
                outcomes[i] = e
        if priced:
            for slot, outcome in zip(slots, await self._committer.submit(priced), strict=True):
                outcomes[slot] = outcome
        if held:
            for slot, outcome in zip(held_slots, await self._keep(caller, held), strict=True):
                outcomes[slot] = outcome
        return [o for o in outcomes if o is not None]

    async def _keep(self, caller: Caller, held: list[quarantine.Held]) -> list[Outcome]:
        """Commit the quarantine rows before answering (rare: no group commit needed)."""
        try:
            async with self._db.write() as conn:
                outcomes, fresh = await quarantine.keep(conn, caller.project_id, caller.mode, held)
        except Exception:
            log.exception("keeping %d events in the quarantine failed", len(held))
            error = UnavailableError("Storage is unavailable; retry with the same idempotency key")
            return [error] * len(held)
        if fresh and self._observer is not None:
            self._observer.quarantined(fresh)
        return outcomes
