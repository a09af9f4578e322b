"""The usage rollup (docs/dashboard.md#the-usage-rollup): events stored and not voided, counted and summed
per project, mode and quarter hour (UTC) of ingest time, in the same transaction as the events change, so
charts read a few rows per hour instead of every event. Quarter hours because every UTC offset in use is a
whole number of them: buckets of any zone's hours, days and months are unions of slots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import to_micros
from scrawn.server.events import rollup_repository as repository
from scrawn.server.events.rollup_repository import SlotKey
from scrawn.server.ledger.types import UsageDebit

SLOT_MS = 15 * 60_000


def slot_of(at: int) -> int:
    """The start of the quarter hour (Unix ms, UTC) holding ``at``."""
    return at - at % SLOT_MS


async def stored(conn: AsyncConnection, debits: Sequence[UsageDebit], ingested_at: int) -> None:
    """Count the events a flush has just stored at ``ingested_at`` (their debits): summed here first, so
    one row per project and mode is written per flush, however many events it holds."""
    changes: dict[SlotKey, list[int]] = defaultdict(lambda: [0, 0])
    slot = slot_of(ingested_at)
    for debit in debits:
        change = changes[(debit.project_id, debit.mode, slot)]
        change[0] += 1
        change[1] += debit.micros
    await repository.add(conn, {key: (n, micros) for key, (n, micros) in changes.items()})


async def voided(conn: AsyncConnection, project_id: str, mode: str, ingested_at: int, debit: Decimal) -> None:
    """Take a voided event out of the slot it was counted in."""
    await repository.add(conn, {(project_id, mode, slot_of(ingested_at)): (-1, -to_micros(debit))})
