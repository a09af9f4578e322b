"""SQL on ``events`` for everything but ingest and voids (those write through ``store.py`` and
``void_store.py``): the CLI's listings, ``explain``, and what other domains ask about a project's events."""

from __future__ import annotations

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import events


async def any_event(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project holds any event (amounts in its currency)."""
    found = await conn.scalar(select(events.c.project_id).where(events.c.project_id == project_id).limit(1))
    return found is not None


async def get(
    conn: AsyncConnection, project_id: str, mode: str, event_id: str
) -> Row[tuple[object, ...]] | None:
    """One event row (``explain``)."""
    return (
        await conn.execute(
            select(events).where(
                events.c.project_id == project_id, events.c.mode == mode, events.c.id == event_id
            )
        )
    ).first()
