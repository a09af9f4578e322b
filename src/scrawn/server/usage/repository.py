"""All SQL on ``usage_records``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import filtered, owned, project_deletes
from scrawn.server.db.schema import usage_records as table
from scrawn.server.db.sums import split_sum
from scrawn.server.usage.types import Filter


async def any_record(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project holds any usage record (amounts in its currency)."""
    found = await conn.scalar(select(table.c.project_id).where(table.c.project_id == project_id).limit(1))
    return found is not None


async def by_key(conn: AsyncConnection, project_id: str, mode: str, key: str) -> Row[Any] | None:
    return (
        await conn.execute(
            select(table).where(
                table.c.project_id == project_id,
                table.c.mode == mode,
                table.c.idempotency_key == key,
            )
        )
    ).first()


async def insert_record(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """False when a record with the same idempotency key is already there (raced in on PostgreSQL)."""
    inserted = await conn.execute(dialect_insert(conn, table).values(**values).on_conflict_do_nothing())
    return bool(inserted.rowcount)


def conditions(project_id: str, mode: str, f: Filter) -> list[ColumnElement[bool]]:
    where = owned(table, project_id, mode) + filtered(
        table,
        user_id=f.user_id,
        context=f.context,
        model=f.model,
        usage_type=f.usage_type,
        transaction_id=f.transaction_id,
    )
    if f.start is not None:
        where.append(table.c.occurred_at >= f.start)
    if f.end is not None:
        where.append(table.c.occurred_at < f.end)
    return where


_SUMMED = ("cost", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "audio_ms")


def total_columns() -> list[Any]:
    """The sums behind :class:`Totals`, each split in two halves so it stays exact past 2^63 on SQLite too
    (docs/money.md#exact-sums)."""
    columns: list[Any] = [func.count().label("records")]
    for name in _SUMMED:
        columns += split_sum(table.c[name], name)
    return columns


async def page(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, cursor: tuple[int, str] | None, limit: int
) -> list[Row[Any]]:
    """Matching records newest first, after ``cursor`` (occurred_at, id) when given."""
    stmt = select(table).where(*conditions(project_id, mode, f))
    if cursor is not None:
        stmt = stmt.where(
            or_(
                table.c.occurred_at < cursor[0],
                and_(table.c.occurred_at == cursor[0], table.c.id < cursor[1]),
            )
        )
    return list(await conn.execute(stmt.order_by(table.c.occurred_at.desc(), table.c.id.desc()).limit(limit)))


async def totals(conn: AsyncConnection, project_id: str, mode: str, f: Filter) -> Row[Any]:
    """One row of :func:`total_columns` over the matching records."""
    return (await conn.execute(select(*total_columns()).where(*conditions(project_id, mode, f)))).one()


async def totals_by(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, column: str
) -> list[Row[Any]]:
    """Rows of :func:`total_columns` per value of ``column`` (as ``key``)."""
    key = table.c[column]
    stmt = select(key.label("key"), *total_columns()).where(*conditions(project_id, mode, f)).group_by(key)
    return list(await conn.execute(stmt))


async def totals_by_slot(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, slot: int
) -> list[Row[Any]]:
    """Rows of :func:`total_columns` per ``slot`` milliseconds of occurred_at (as ``slot``: the index)."""
    slot_column = (table.c.occurred_at // slot).label("slot")
    stmt = select(slot_column, *total_columns()).where(*conditions(project_id, mode, f)).group_by(slot_column)
    return list(await conn.execute(stmt))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's usage records; how many rows went (``scrawn projects delete``)."""
    deletes = project_deletes(project_id, table)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
