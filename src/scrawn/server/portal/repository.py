"""The portal's SQL: one user's billed events, summed per day and per model. Read-only, and always scoped
to the token's project, mode and user (``ix_events_user`` serves every query). Sums are exact on both
databases (``db/sums.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import from_micros
from scrawn.server.db.schema import events
from scrawn.server.db.sums import joined, split_sum

DAY_MS = 86_400_000


@dataclass(frozen=True)
class UsageTotal:
    key: str  # a UTC day (Unix ms of its start) as text, or a model ("" for events without one)
    amount: Decimal  # minor units of the project's currency
    events: int


def _grouped(project_id: str, mode: str, user_id: str, since: int, key: Any) -> Any:
    return (
        select(key.label("key"), func.count().label("events"), *split_sum(events.c.debit, "debit"))
        .where(
            events.c.project_id == project_id,
            events.c.mode == mode,
            events.c.user_id == user_id,
            events.c.ingested_at >= since,
            events.c.voided_at.is_(None),
        )
        .group_by(key)
    )


def _totals(rows: Any) -> list[UsageTotal]:
    return [UsageTotal(str(r.key), from_micros(joined(r, "debit") or 0), int(r.events)) for r in rows]


async def usage_by_day(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int
) -> list[UsageTotal]:
    """Billed events since ``since`` (Unix ms) per UTC day, oldest first; the key is the day's start."""
    day = (events.c.ingested_at // DAY_MS) * DAY_MS
    rows = await conn.execute(_grouped(project_id, mode, user_id, since, day).order_by(day))
    return _totals(rows)


async def usage_by_model(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int
) -> list[UsageTotal]:
    """Billed events since ``since`` per model ("" for events that name none)."""
    model = func.coalesce(events.c.model, "")
    return _totals(await conn.execute(_grouped(project_id, mode, user_id, since, model)))
