"""Write a batch of priced events exactly once: the events, their ledger debits and the users'
balance rows, in the caller's transaction (DESIGN §5). The rules live here; the SQL in ``repository.py``
(the events) and ``ledger/`` (the money)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._codes import INVALID_DATA
from scrawn.errors import AlreadyExistsError, OutOfRangeError, ScrawnError
from scrawn.money import to_micros
from scrawn.server.db import bulk
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository, rollup
from scrawn.server.events.repository import EventKey
from scrawn.server.events.types import Billed, Outcome, PricedEvent, Stored
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.rules import period_of
from scrawn.server.ledger.types import Moved, Scope, UsageDebit


async def store_batch(conn: AsyncConnection, batch: Sequence[PricedEvent]) -> list[Outcome]:
    now = now_ms()
    results: list[Outcome | None] = [None] * len(batch)
    keys: list[EventKey] = [(ev.project_id, ev.mode, ev.idempotency_key) for ev in batch]
    first: dict[EventKey, int] = {}
    fresh: list[int] = []
    for i, key in enumerate(keys):
        if key in first:
            continue  # a repeat inside the batch: resolved against the first below
        first[key] = i
        fresh.append(i)
    # Once: rows, ledger and rollup share it (pricing has it for most events already).
    micros = {i: _micros_of(batch[i]) for i in fresh}

    # No look-up first: INSERT … ON CONFLICT DO NOTHING RETURNING says which keys are new, and only the
    # others (retries, races with another process) are read back below.
    stored: dict[EventKey, Billed] = {}
    # A debit that would overflow its user's balance row is refused alone, never failing the whole flush.
    refused = await _beyond_balance_range(conn, batch, fresh, micros)
    generated = iter(bulk.uuids(len(fresh)))
    rows: dict[int, repository.EventRow] = {}
    for i in fresh:
        if i not in refused:
            ev = batch[i]
            rows[i] = repository.event_row(ev, ev.input.event_id or next(generated), now, micros[i])

    inserted: set[EventKey] = set()
    # PostgreSQL posts the usage in the statement that inserts the events; the rest of the rules follow.
    together = conn.dialect.name == "postgresql"
    flagged: dict[Scope, Moved] = {}
    if rows and together:
        inserted, flagged = await repository.insert_new_with_usage(
            conn, list(rows.values()), now, period_of(now)
        )
    elif rows:
        inserted = await repository.insert_new(conn, list(rows.values()))
    if rows:
        lost = [row for i, row in rows.items() if keys[i] not in inserted]
        stored = await repository.billed_rows(conn, lost)  # retries, other processes, eventId collisions

    new_events = [i for i in rows if keys[i] in inserted]
    debits = [_usage(batch[i], micros[i], rows[i][repository.ID]) for i in new_events]
    if together:
        await ledger.settle_usage(conn, debits, flagged, now)
    else:
        await ledger.post_usage(conn, debits, now)
    await rollup.stored(conn, debits, now)

    for i, (ev, key) in enumerate(zip(batch, keys, strict=True)):
        owner = first[key]
        if key in inserted:
            duplicate = owner != i
            if duplicate and batch[owner].input.fingerprint != ev.input.fingerprint:
                results[i] = conflict()
            else:
                event_id = rows[owner][repository.ID]
                results[i] = Stored(event_id, ev.idempotency_key, now, duplicate, batch[owner].debit)
        elif key in stored:
            results[i] = answer(stored[key], ev.idempotency_key, ev.input.fingerprint)
        elif owner in refused:
            results[i] = refused[owner]
        else:
            results[i] = AlreadyExistsError(
                f"eventId: an event with id {ev.input.event_id} already exists", field="eventId"
            )
    return [r for r in results if r is not None]


def answer(billed: Billed, key: str, fingerprint: str) -> Outcome:
    """A retry of a billed event: the stored answer (a duplicate), or a conflict for other content."""
    if billed.fingerprint != fingerprint:
        return conflict()
    return Stored(billed.event_id, key, billed.ingested_at, True, billed.debit)


def conflict() -> AlreadyExistsError:
    return AlreadyExistsError(
        "idempotencyKey: already used for an event with different content", field="idempotencyKey"
    )


class BalanceOutOfRange(OutOfRangeError):
    """A debit that would take a user's balance past what BIGINT micro-units hold."""

    stream_code = INVALID_DATA


def _micros_of(ev: PricedEvent) -> int:
    return to_micros(ev.debit) if ev.micros is None else ev.micros


def _usage(ev: PricedEvent, micros: int, event_id: str | None = None) -> UsageDebit:
    return UsageDebit(ev.project_id, ev.mode, ev.input.user_id, micros, event_id)


async def _beyond_balance_range(
    conn: AsyncConnection, batch: Sequence[PricedEvent], candidates: Sequence[int], micros: dict[int, int]
) -> dict[int, ScrawnError]:
    """The candidates whose debit would overflow the user's balance row, refused one by one."""
    moves = [((batch[i].project_id, batch[i].mode, batch[i].input.user_id), -micros[i]) for i in candidates]
    beyond = await ledger.moves_beyond_range(conn, moves)
    return {
        candidates[j]: BalanceOutOfRange(
            "debit: this user's balance would pass the storable range; the event was not recorded",
            field="debit",
        )
        for j in sorted(beyond)
    }
