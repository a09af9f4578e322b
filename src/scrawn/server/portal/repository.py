"""The portal's SQL: one user's billed events, summed per day and per model. Read-only, and always scoped
to the token's project, mode and user (``ix_events_user`` serves every query). Sums are exact on both
databases (``db/sums.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import from_micros
from scrawn.server.db.schema import events
from scrawn.server.db.sums import joined, split_sum


@dataclass(frozen=True)
class UsageTotal:
    key: str  # a span's start (Unix ms) as text, or a model ("" for events without one)
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


async def usage_by_span(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int, width: int
) -> list[UsageTotal]:
    """Billed events since ``since`` (Unix ms) per ``width`` ms counted from it, oldest first; the key is
    the span's start (local days: ``usage/series.py`` picks a width every day boundary is a multiple of)."""
    # Inlined: PostgreSQL groups by an expression only when its parameters are the select's own.
    origin, span = (literal_column(str(int(v)), BigInteger) for v in (since, width))
    start = events.c.ingested_at - (events.c.ingested_at - origin) % span
    rows = await conn.execute(_grouped(project_id, mode, user_id, since, start).order_by(start))
    return _totals(rows)


async def usage_by_model(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, since: int
) -> list[UsageTotal]:
    """Billed events since ``since`` per model ("" for events that name none)."""
    model = func.coalesce(events.c.model, "")
    return _totals(await conn.execute(_grouped(project_id, mode, user_id, since, model)))
