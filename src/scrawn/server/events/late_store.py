"""The late-event window's one query: which idempotency keys are taken already (a late retry of a stored
or quarantined event answers as a duplicate rather than being refused)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import events, quarantined_events


async def known_keys(conn: AsyncConnection, project_id: str, mode: str, keys: Iterable[str]) -> set[str]:
    wanted = sorted(set(keys))
    found: set[str] = set()
    for table in (events, quarantined_events):
        for start in range(0, len(wanted), 500):
            rows = await conn.execute(
                select(table.c.idempotency_key).where(
                    table.c.project_id == project_id,
                    table.c.mode == mode,
                    table.c.idempotency_key.in_(wanted[start : start + 500]),
                )
            )
            found.update(r.idempotency_key for r in rows)
    return found
