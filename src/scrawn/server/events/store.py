"""Write a batch of priced events exactly once: the events, their ledger debits and the users'
balance rows, in the caller's transaction (DESIGN §5)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._codes import INVALID_DATA
from scrawn.errors import AlreadyExistsError, OutOfRangeError, ScrawnError
from scrawn.money import format_amount
from scrawn.server.db.engine import dialect_insert, now_ms
from scrawn.server.db.schema import events
from scrawn.server.events.intake import EventInput
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry


@dataclass(frozen=True)
class PricedEvent:
    project_id: str
    mode: str
    input: EventInput
    idempotency_key: str
    debit: Decimal  # the total; Σ components when the event has components
    components: dict[str, Decimal | None]  # AI events: by component; rounded to micro-units already
    pricing: dict[str, Any]


@dataclass(frozen=True)
class Stored:
    event_id: str
    idempotency_key: str
    ingested_at: int  # Unix ms
    duplicate: bool
    debit: Decimal  # what the stored event was charged


Outcome = Stored | ScrawnError


async def store_batch(conn: AsyncConnection, batch: Sequence[PricedEvent]) -> list[Outcome]:
    now = now_ms()
    results: list[Outcome | None] = [None] * len(batch)
    first: dict[tuple[str, str, str], int] = {}
    fresh: list[int] = []
    for i, ev in enumerate(batch):
        key = (ev.project_id, ev.mode, ev.idempotency_key)
        if key in first:
            continue  # a repeat inside the batch: resolved against the first below
        first[key] = i
        fresh.append(i)

    # No look-up first: INSERT … ON CONFLICT DO NOTHING RETURNING says which keys are new, and only the
    # others (retries, races with another process) are read back below.
    stored: dict[tuple[str, str, str], tuple[str, str, int, Decimal]] = {}
    # A debit that would overflow its user's balance row is refused alone, never failing the whole flush.
    refused = await _beyond_balance_range(conn, batch, fresh)
    rows = []
    ids: dict[int, str] = {}
    for i in fresh:
        ev = batch[i]
        if (ev.project_id, ev.mode, ev.idempotency_key) in stored or i in refused:
            continue
        ids[i] = ev.input.event_id or str(uuid.uuid4())
        rows.append(_event_row(ev, ids[i], now))

    inserted: set[tuple[str, str, str]] = set()
    if rows:
        stmt = dialect_insert(conn, events).on_conflict_do_nothing()
        returned = await conn.execute(
            stmt.returning(events.c.project_id, events.c.mode, events.c.idempotency_key), rows
        )
        inserted = {(r.project_id, r.mode, r.idempotency_key) for r in returned}
        lost = [
            i for i in ids if (batch[i].project_id, batch[i].mode, batch[i].idempotency_key) not in inserted
        ]
        if lost:  # a concurrent writer (another process) or an eventId collision
            stored |= await _existing(conn, [batch[i] for i in lost])

    new_events = [
        i for i in ids if (batch[i].project_id, batch[i].mode, batch[i].idempotency_key) in inserted
    ]
    await ledger.post(conn, [_usage(batch[i], ids[i]) for i in new_events], now)

    for i, ev in enumerate(batch):
        key = (ev.project_id, ev.mode, ev.idempotency_key)
        owner = first[key]
        if key in inserted:
            duplicate = owner != i
            if duplicate and batch[owner].input.fingerprint != ev.input.fingerprint:
                results[i] = conflict()
            else:
                results[i] = Stored(ids[owner], ev.idempotency_key, now, duplicate, batch[owner].debit)
        elif key in stored:
            event_id, fingerprint, ingested_at, debit = stored[key]
            results[i] = (
                Stored(event_id, ev.idempotency_key, ingested_at, True, debit)
                if fingerprint == ev.input.fingerprint
                else conflict()
            )
        elif owner in refused:
            results[i] = refused[owner]
        else:
            results[i] = AlreadyExistsError(
                f"eventId: an event with id {ev.input.event_id} already exists", field="eventId"
            )
    return [r for r in results if r is not None]


def conflict() -> AlreadyExistsError:
    return AlreadyExistsError(
        "idempotencyKey: already used for an event with different content", field="idempotencyKey"
    )


class BalanceOutOfRange(OutOfRangeError):
    """A debit that would take a user's balance past what BIGINT micro-units hold."""

    stream_code = INVALID_DATA


def _usage(ev: PricedEvent, event_id: str | None = None) -> LedgerEntry:
    return LedgerEntry(ev.project_id, ev.mode, ev.input.user_id, "usage", -ev.debit, event_id=event_id)


async def _beyond_balance_range(
    conn: AsyncConnection, batch: Sequence[PricedEvent], candidates: Sequence[int]
) -> dict[int, ScrawnError]:
    """The candidates whose debit would overflow the user's balance row, refused one by one."""
    beyond = await ledger.beyond_range(conn, [_usage(batch[i]) for i in candidates])
    return {
        candidates[j]: BalanceOutOfRange(
            "debit: this user's balance would pass the storable range; the event was not recorded",
            field="debit",
        )
        for j in sorted(beyond)
    }


async def _existing(
    conn: AsyncConnection, batch: Sequence[PricedEvent]
) -> dict[tuple[str, str, str], tuple[str, str, int, Decimal]]:
    by_scope: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ev in batch:
        by_scope[(ev.project_id, ev.mode)].append(ev.idempotency_key)
    found: dict[tuple[str, str, str], tuple[str, str, int, Decimal]] = {}
    for (project_id, mode), keys in by_scope.items():
        for key, known in (await existing_events(conn, project_id, mode, keys)).items():
            found[(project_id, mode, key)] = known
    return found


async def existing_events(
    conn: AsyncConnection, project_id: str, mode: str, keys: Sequence[str]
) -> dict[str, tuple[str, str, int, Decimal]]:
    """Stored events by idempotency key: (event id, fingerprint, ingested_at, debit)."""
    found: dict[str, tuple[str, str, int, Decimal]] = {}
    for start in range(0, len(keys), 500):
        rows = await conn.execute(
            select(
                events.c.idempotency_key,
                events.c.id,
                events.c.fingerprint,
                events.c.ingested_at,
                events.c.debit,
            ).where(
                events.c.project_id == project_id,
                events.c.mode == mode,
                events.c.idempotency_key.in_(keys[start : start + 500]),
            )
        )
        for r in rows:
            found[r.idempotency_key] = (r.id, r.fingerprint, r.ingested_at, r.debit)
    return found


def _event_row(ev: PricedEvent, event_id: str, now: int) -> dict[str, Any]:
    inp = ev.input
    ai = inp.ai
    row: dict[str, Any] = {
        "project_id": ev.project_id,
        "mode": ev.mode,
        "id": event_id,
        "idempotency_key": ev.idempotency_key,
        "fingerprint": inp.fingerprint,
        "event_type": inp.event_type,
        "user_id": inp.user_id,
        "basic_usage_type": inp.basic_usage_type,
        "reported_at": inp.reported_at,
        "ingested_at": now,
        "debit": ev.debit,
        "metadata": inp.metadata,
        "pricing": json.dumps(ev.pricing, sort_keys=True, separators=(",", ":")),
        "model": ai.model if ai else None,
        "provider": ai.provider if ai else None,
        "input_tokens": ai.input_tokens if ai else None,
        "output_tokens": ai.output_tokens if ai else None,
        "input_cache_tokens": ai.input_cache_tokens if ai else None,
        "output_cache_tokens": ai.output_cache_tokens if ai else None,
        "input_debit": ev.components.get("input"),
        "output_debit": ev.components.get("output"),
        "input_cache_debit": ev.components.get("inputCache"),
        "output_cache_debit": ev.components.get("outputCache"),
        "name": inp.typed.name if inp.typed else None,
        "quantity": format_amount(inp.typed.quantity) if inp.typed else None,
        "product_ref": inp.typed.product_ref if inp.typed else None,
    }
    return row
