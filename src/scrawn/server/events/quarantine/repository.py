"""All SQL on the quarantine (``quarantined_events``): well-formed events the project's configuration could
not price, kept until ``reprice`` moves them onto the ledger (docs/pricing-safety.md#quarantine).
Every query but the metrics gauge is scoped to one project and mode; the caller owns the transaction.
Rows leave as the typed values of ``quarantine/types.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import ids_matching, project_deletes
from scrawn.server.db.schema import quarantined_events as qe
from scrawn.server.events.intake import EventInput
from scrawn.server.events.price import Unpriceable
from scrawn.server.events.quarantine.types import Cursor, KeptEvent, KeptKey

CHUNK = 500  # keys per IN (...) list
MAX_FIELD = 64  # quarantined_events.field


def _scope(project_id: str, mode: str) -> list[ColumnElement[bool]]:
    return [qe.c.project_id == project_id, qe.c.mode == mode]


def _waiting(project_id: str, mode: str) -> list[ColumnElement[bool]]:
    return [*_scope(project_id, mode), qe.c.repriced_at.is_(None)]


def _after(cursor: Cursor | None) -> list[ColumnElement[bool]]:
    if cursor is None:
        return []
    at, row_id = cursor
    return [or_(qe.c.received_at > at, and_(qe.c.received_at == at, qe.c.id > row_id))]


def kept_row(
    project_id: str, mode: str, inp: EventInput, key: str, why: Unpriceable, now: int
) -> dict[str, object]:
    """The row that keeps ``inp`` under ``key`` (its id: the event id it asked for, else a new one)."""
    return {
        "project_id": project_id,
        "mode": mode,
        "id": inp.event_id or str(uuid.uuid4()),
        "idempotency_key": key,
        "fingerprint": inp.fingerprint,
        "event_type": inp.event_type,
        "user_id": inp.user_id,
        "reported_at": inp.reported_at,
        "received_at": now,
        "input": inp.to_json(),
        "reason_code": why.reason_code,
        "field": why.field,
        "reason": why.reason,
        "attempts": 0,
    }


async def insert_new(conn: AsyncConnection, rows: Sequence[dict[str, object]]) -> set[str]:
    """Insert what is new; returns the idempotency keys inserted (a key or id already kept is left alone)."""
    if not rows:
        return set()
    stmt = dialect_insert(conn, qe).on_conflict_do_nothing().returning(qe.c.idempotency_key)
    return {r.idempotency_key for r in await conn.execute(stmt, list(rows))}


async def by_keys(
    conn: AsyncConnection, project_id: str, mode: str, keys: Sequence[str]
) -> dict[str, KeptKey]:
    found: dict[str, KeptKey] = {}
    for start in range(0, len(keys), CHUNK):
        rows = await conn.execute(
            select(qe.c.idempotency_key, qe.c.id, qe.c.fingerprint, qe.c.field, qe.c.reason).where(
                *_scope(project_id, mode), qe.c.idempotency_key.in_(keys[start : start + CHUNK])
            )
        )
        found |= {r.idempotency_key: KeptKey(r.id, r.fingerprint, r.field, r.reason) for r in rows}
    return found


async def known_ids(conn: AsyncConnection, project_id: str, mode: str, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are in this project's quarantine (waiting or not)."""
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        rows = await conn.execute(
            select(qe.c.id).where(*_scope(project_id, mode), qe.c.id.in_(ids[start : start + CHUNK]))
        )
        found |= {r.id for r in rows}
    return found


async def lock_waiting(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    limit: int,
    after: Cursor | None = None,
    ids: Sequence[str] | None = None,
) -> list[KeptEvent]:
    """The next waiting rows (oldest first), locked for this transaction. PostgreSQL skips rows another
    reprice holds, so concurrent runs share the work; SQLite serialises writers anyway."""
    stmt = select(qe).where(*_waiting(project_id, mode), *_after(after))
    if ids is not None:
        stmt = stmt.where(qe.c.id.in_(ids))
    stmt = stmt.order_by(qe.c.received_at, qe.c.id).limit(limit).with_for_update(skip_locked=True)
    return [KeptEvent(**r._mapping) for r in await conn.execute(stmt)]


async def mark_repriced(
    conn: AsyncConnection, project_id: str, mode: str, ids: Sequence[str], now: int
) -> None:
    for start in range(0, len(ids), CHUNK):
        await conn.execute(
            update(qe)
            .where(*_waiting(project_id, mode), qe.c.id.in_(ids[start : start + CHUNK]))
            .values(repriced_at=now, last_attempt_at=now)
        )


async def mark_attempt(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    ids: Sequence[str],
    now: int,
    *,
    reason_code: str,
    field: str,
    reason: str,
) -> None:
    """Still unpriceable: count the attempt and keep today's reason."""
    for start in range(0, len(ids), CHUNK):
        await conn.execute(
            update(qe)
            .where(*_waiting(project_id, mode), qe.c.id.in_(ids[start : start + CHUNK]))
            .values(
                attempts=qe.c.attempts + 1,
                last_attempt_at=now,
                reason_code=reason_code,
                field=field[:MAX_FIELD],
                reason=reason,
            )
        )


async def waiting_by_reason(conn: AsyncConnection, project_id: str, mode: str) -> dict[str, int]:
    rows = await conn.execute(
        select(qe.c.reason_code, func.count().label("n"))
        .where(*_waiting(project_id, mode))
        .group_by(qe.c.reason_code)
        .order_by(qe.c.reason_code)
    )
    return {r.reason_code: int(r.n) for r in rows}


async def count_waiting(
    conn: AsyncConnection, project_id: str, mode: str, ids: Sequence[str] | None = None
) -> int:
    if ids is None:
        return int(
            await conn.scalar(select(func.count()).select_from(qe).where(*_waiting(project_id, mode))) or 0
        )
    total = 0
    for start in range(0, len(ids), CHUNK):
        total += int(
            await conn.scalar(
                select(func.count())
                .select_from(qe)
                .where(*_waiting(project_id, mode), qe.c.id.in_(ids[start : start + CHUNK]))
            )
            or 0
        )
    return total


async def count_all_waiting(conn: AsyncConnection) -> int:
    """Every project and mode (the /metrics gauge)."""
    return int(await conn.scalar(select(func.count()).select_from(qe).where(qe.c.repriced_at.is_(None))) or 0)


async def page_waiting(
    conn: AsyncConnection, project_id: str, mode: str, *, limit: int, after: Cursor | None = None
) -> list[KeptEvent]:
    stmt = (
        select(qe)
        .where(*_waiting(project_id, mode), *_after(after))
        .order_by(qe.c.received_at, qe.c.id)
        .limit(limit)
    )
    return [KeptEvent(**r._mapping) for r in await conn.execute(stmt)]


async def position(conn: AsyncConnection, project_id: str, mode: str, row_id: str) -> Cursor | None:
    """Where the row ``row_id`` sits in the waiting list's order (a keyset cursor), if it exists."""
    row = (
        await conn.execute(
            select(qe.c.received_at, qe.c.id).where(*_scope(project_id, mode), qe.c.id == row_id)
        )
    ).first()
    return None if row is None else (int(row.received_at), str(row.id))


async def waiting_ids_matching(conn: AsyncConnection, project_id: str, mode: str, given: str) -> list[str]:
    """Ids of kept events still waiting, equal to ``given`` or starting with it."""
    return list(await conn.scalars(ids_matching(qe.c.id, given, *_waiting(project_id, mode))))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's kept (quarantined) events; how many rows went (``scrawn projects delete``)."""
    deletes = project_deletes(project_id, qe)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
