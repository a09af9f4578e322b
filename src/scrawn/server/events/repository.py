"""SQL on ``events`` for everything but ingest and voids (those write through ``store.py`` and
``void_store.py``): the CLI's listings, ``explain``, and what other domains ask about a project's events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Row, and_, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scrawn.server.db.schema import events
from scrawn.server.db.sums import joined, split_sum


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


@dataclass(frozen=True)
class Scope:
    """Which events a listing reads: one project and mode, optionally one user and an ingest-time range
    (``since`` inclusive, ``before`` exclusive, Unix ms)."""

    project_id: str
    mode: str
    user_id: str | None = None
    since: int | None = None
    before: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        where = [events.c.project_id == self.project_id, events.c.mode == self.mode]
        if self.user_id is not None:
            where.append(events.c.user_id == self.user_id)
        if self.since is not None:
            where.append(events.c.ingested_at >= self.since)
        if self.before is not None:
            where.append(events.c.ingested_at < self.before)
        return where


def _after(at: int, event_id: str) -> ColumnElement[bool]:
    """Strictly after ``(at, event_id)`` in ``(ingested_at, id)`` order: events sharing a millisecond are
    neither repeated nor skipped across pages."""
    return or_(events.c.ingested_at > at, and_(events.c.ingested_at == at, events.c.id > event_id))


async def newest(conn: AsyncConnection, scope: Scope, limit: int) -> Sequence[Row[tuple[object, ...]]]:
    """The newest ``limit`` events, newest first."""
    stmt = select(events).where(*scope.where()).order_by(events.c.ingested_at.desc(), events.c.id.desc())
    return (await conn.execute(stmt.limit(limit))).all()


async def ingested_ids(conn: AsyncConnection, scope: Scope) -> dict[str, int]:
    """Event id → ingested_at of every event in scope."""
    rows = await conn.execute(select(events.c.id, events.c.ingested_at).where(*scope.where()))
    return {r.id: r.ingested_at for r in rows}


async def pages(
    conn: AsyncConnection, scope: Scope, page_size: int
) -> AsyncIterator[Sequence[Row[tuple[object, ...]]]]:
    """Every matching event, oldest first, one bounded query at a time (keyset pagination)."""
    where = scope.where()
    cursor: tuple[int, str] | None = None
    while True:
        stmt = select(events).where(*where)
        if cursor is not None:
            stmt = stmt.where(_after(*cursor))
        page = (await conn.execute(stmt.order_by(events.c.ingested_at, events.c.id).limit(page_size))).all()
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        cursor = (page[-1].ingested_at, page[-1].id)


async def pricing_naming(conn: AsyncConnection, project_id: str, since: int, text: str) -> AsyncIterator[str]:
    """The recorded pricing (JSON text) of the project's events (both modes) ingested at or after ``since``
    whose pricing contains ``text``; streamed, bounded by ``ix_events_ingested``."""
    query = select(events.c.pricing).where(
        events.c.project_id == project_id,
        events.c.mode.in_(("live", "test")),
        events.c.ingested_at >= since,
        events.c.pricing.contains(text, autoescape=True),
    )
    result = await conn.stream(query.execution_options(yield_per=1000))
    async for (pricing,) in result:
        yield pricing


async def listing(
    conn: AsyncConnection,
    scope: Scope,
    *,
    event_type: str | None,
    model: str | None = None,
    voided: bool | None,
    size: int,
    cursor: tuple[int, str] | None,
) -> Sequence[Row[tuple[object, ...]]]:
    """Up to ``size + 1`` events newest first, strictly before the ``(ingested_at, id)`` cursor (the
    dashboard's keyset pages), filtered by type, model and whether they were voided."""
    stmt = select(events).where(*scope.where())
    if event_type:
        stmt = stmt.where(events.c.event_type == event_type)
    if model:
        stmt = stmt.where(events.c.model == model)
    if voided is not None:
        stmt = stmt.where(events.c.voided_at.is_not(None) if voided else events.c.voided_at.is_(None))
    if cursor is not None:
        at, event_id = cursor
        stmt = stmt.where(
            or_(events.c.ingested_at < at, and_(events.c.ingested_at == at, events.c.id < event_id))
        )
    stmt = stmt.order_by(events.c.ingested_at.desc(), events.c.id.desc()).limit(size + 1)
    return (await conn.execute(stmt)).all()


@dataclass(frozen=True)
class Bucket:
    start: int  # Unix ms
    events: int
    debit_micros: int  # billed, voided events left out


async def buckets(conn: AsyncConnection, scope: Scope, width_ms: int) -> list[Bucket]:
    """Events and billed usage per ``width_ms`` bucket of ingest time (UTC), oldest first."""
    # Inlined: PostgreSQL groups by an expression only when its parameters are the select's own.
    width = literal_column(str(int(width_ms)), BigInteger)
    start = events.c.ingested_at - events.c.ingested_at % width
    stmt = (
        select(start.label("start"), func.count().label("n"), *split_sum(events.c.debit, "debit"))
        .where(*scope.where(), events.c.voided_at.is_(None))
        .group_by(start)
        .order_by(start)
    )
    return [Bucket(int(r.start), int(r.n), joined(r, "debit") or 0) for r in await conn.execute(stmt)]
