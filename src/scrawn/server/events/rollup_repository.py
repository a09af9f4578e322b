"""All SQL on ``usage_rollup``: billed usage per project, mode and quarter hour of ingest time, kept in the
transaction that stores or voids events (``events/rollup.py`` says what changes; this writes it)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import project_deletes
from scrawn.server.db.schema import usage_rollup as table
from scrawn.server.db.sums import SHIFT, joined

SlotKey = tuple[str, str, int]  # (project_id, mode, slot_start)
_LOW = 2**SHIFT - 1


async def add(conn: AsyncConnection, changes: Mapping[SlotKey, tuple[int, int]]) -> None:
    """Add (events, debit micro-units) to each slot in one statement, creating the slots that are new.
    ``n = n + excluded.n`` is atomic on both databases; the rows go in key order, so concurrent writers
    lock them in one order."""
    if not changes:
        return
    rows = [
        {
            "project_id": project_id,
            "mode": mode,
            "slot_start": slot,
            "events": events,
            "debit_hi": micros >> SHIFT,  # the halves db/sums.py sums: exact for negative amounts too
            "debit_lo": micros & _LOW,
        }
        for (project_id, mode, slot), (events, micros) in sorted(changes.items())
    ]
    stmt = dialect_insert(conn, table).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.project_id, table.c.mode, table.c.slot_start],
            set_={
                "events": table.c.events + stmt.excluded.events,
                "debit_hi": table.c.debit_hi + stmt.excluded.debit_hi,
                "debit_lo": table.c.debit_lo + stmt.excluded.debit_lo,
            },
        )
    )


async def totals(
    conn: AsyncConnection, project_id: str, mode: str, start: int, end: int, width: int
) -> list[tuple[int, int, int]]:
    """(group start, events, debit micro-units) of the slots that start in [start, end), grouped by
    ``width`` ms counted from ``start``; oldest first, empty groups left out."""
    # Inlined: PostgreSQL groups by an expression only when its parameters are the select's own.
    offset = literal_column(str(int(start)), BigInteger)
    group = (table.c.slot_start - offset) // literal_column(str(int(width)), BigInteger)
    stmt = (
        select(
            group.label("g"),
            func.sum(table.c.events).label("events"),
            func.sum(table.c.debit_hi).label("debit_hi"),
            func.sum(table.c.debit_lo).label("debit_lo"),
        )
        .where(
            table.c.project_id == project_id,
            table.c.mode == mode,
            table.c.slot_start >= start,
            table.c.slot_start < end,
        )
        .group_by(group)
        .order_by(group)
    )
    return [
        (start + int(r.g) * width, int(r.events), joined(r, "debit") or 0) for r in await conn.execute(stmt)
    ]


async def all_slots(conn: AsyncConnection, project_id: str) -> dict[SlotKey, tuple[int, int]]:
    """Every slot of a project with (events, debit micro-units), empty ones too (checks and tests)."""
    rows = await conn.execute(select(table).where(table.c.project_id == project_id))
    return {(r.project_id, r.mode, r.slot_start): (int(r.events), joined(r, "debit") or 0) for r in rows}


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's usage rollup (``scrawn projects delete``); how many rows went."""
    deletes = project_deletes(project_id, table)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
