"""The SQL of voiding an event (docs/events.md#voiding-an-event): find and lock the event row, the
reversing ledger entry, the user's balance row, and the event's void marks."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.schema import api_keys, balances, events, ledger_entries

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


async def reversal_entry(conn: AsyncConnection, project_id: str, mode: str, event_id: str) -> Any:
    stmt = select(ledger_entries.c.id, ledger_entries.c.amount)
    return (
        await conn.execute(
            stmt.where(
                ledger_entries.c.project_id == project_id,
                ledger_entries.c.mode == mode,
                ledger_entries.c.idempotency_key == reversal_key(event_id),
            )
        )
    ).first()


async def locked_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> Any:
    """The user's balance row (balance, spent, spend_period), locked; None if the user has none."""
    stmt = select(balances.c.balance, balances.c.spent, balances.c.spend_period).where(
        balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id
    )
    return (await conn.execute(stmt.with_for_update())).first()


async def insert_reversal(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    event_id: str,
    amount: Decimal,
    reason: str,
    now: int,
) -> str | None:
    """Write the reversing entry; its id, or None when its key is already taken."""
    entry_id = str(uuid.uuid4())
    stmt = (
        dialect_insert(conn, ledger_entries)
        .values(
            project_id=project_id,
            mode=mode,
            id=entry_id,
            user_id=user_id,
            kind=REVERSAL_KIND,
            amount=amount,
            event_id=event_id,
            idempotency_key=reversal_key(event_id),
            description=reason,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(ledger_entries.c.id)
    )
    return (await conn.execute(stmt)).scalar()


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
