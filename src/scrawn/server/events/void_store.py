"""The SQL of voiding an event (docs/events.md#voiding-an-event): find and lock the event row, and the
event's void marks (the reversing entry and the balance are the ledger's: ``ledger/service.py``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import api_keys, events

REVERSAL_KIND = "void"


def reversal_key(event_id: str) -> str:
    """The reversing entry's idempotency key: one reversal per event, enforced by the ledger's unique key."""
    return f"void:{event_id}"


async def find_event(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    event_id: str | None = None,
    idempotency_key: str | None = None,
) -> Any:
    """The event row, locked for the rest of the transaction (``FOR UPDATE`` on PostgreSQL; SQLite's
    write transactions are serialized already, and SQLAlchemy leaves the clause out there)."""
    where = [events.c.project_id == project_id, events.c.mode == mode]
    if event_id is not None:
        where.append(events.c.id == event_id)
    else:
        where.append(events.c.idempotency_key == idempotency_key)
    stmt = select(
        events.c.id,
        events.c.idempotency_key,
        events.c.user_id,
        events.c.debit,
        events.c.ingested_at,
        events.c.voided_at,
        events.c.voided_by,
        events.c.void_reason,
    ).where(*where)
    return (await conn.execute(stmt.with_for_update())).first()


async def mark_voided(
    conn: AsyncConnection, project_id: str, mode: str, event_id: str, *, by: str, reason: str, now: int
) -> bool:
    """Set the void marks once: False when the event was voided already (a compare-and-set)."""
    done = await conn.execute(
        update(events)
        .where(
            events.c.project_id == project_id,
            events.c.mode == mode,
            events.c.id == event_id,
            events.c.voided_at.is_(None),
        )
        .values(voided_at=now, voided_by=by, void_reason=reason)
    )
    return bool(done.rowcount == 1)


async def key_label(conn: AsyncConnection, project_id: str, key_id: str) -> str | None:
    """``name (role key)`` of the API key that voided an event, for ``scrawn explain``."""
    row = (
        await conn.execute(
            select(api_keys.c.name, api_keys.c.role).where(
                api_keys.c.project_id == project_id, api_keys.c.id == key_id
            )
        )
    ).first()
    return None if row is None else f"{row.name} ({row.role} key)"
