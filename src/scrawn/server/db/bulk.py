"""Many rows in one statement through the driver, with no per-row work in SQLAlchemy (its parameter
processing cost more than the database's own work on ingest's 1,000-row flushes). Rows are tuples in the
order of ``columns``, holding what the database stores (``Micros`` columns as integer micro-units).
PostgreSQL gets ``INSERT … SELECT FROM unnest($1::type[], …)``: one statement text, planned once per
connection, however many rows. SQLite gets multi-row ``VALUES`` when rows come back, else ``executemany``.
The caller owns the transaction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

# Rows per SQLite multi-row VALUES: well below its 32,766 parameters for the widest table (30 columns).
_SQLITE_ROWS = 500


async def insert(
    conn: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    tail: str = "",
    returning: str = "",
) -> list[Any]:
    """``INSERT INTO table (columns) <rows> tail [RETURNING returning]``; the rows returned (empty without
    ``returning``). ``tail`` is an ``ON CONFLICT …`` clause, written for both databases."""
    if not rows:
        return []
    back = f" RETURNING {returning}" if returning else ""
    if conn.dialect.name == "postgresql":
        sql = f"{_pg_head(table, tuple(columns))} {tail}{back}"
        result = await conn.exec_driver_sql(sql, tuple(list(c) for c in zip(*rows, strict=True)))
        return list(result) if returning else []
    head = f"{_into(table, tuple(columns))} VALUES "
    one = f"({', '.join('?' * len(columns))})"
    if not returning:
        await conn.exec_driver_sql(f"{head}{one} {tail}", list(rows))  # executemany
        return []
    found: list[Any] = []
    for start in range(0, len(rows), _SQLITE_ROWS):
        chunk = rows[start : start + _SQLITE_ROWS]
        sql = f"{head}{', '.join([one] * len(chunk))} {tail}{back}"
        found += await conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row))
    return found


@cache
def _into(table: Table, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (columns)``: names taken from the table itself (an unknown one raises)."""
    names = ", ".join(table.c[name].name for name in columns)
    return f"INSERT INTO {table.name} ({names})"


@cache
def _pg_head(table: Table, columns: tuple[str, ...]) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(f"${n}::{_pg_array(table, name, dialect)}" for n, name in enumerate(columns, start=1))
    return f"{_into(table, columns)} SELECT * FROM unnest({arrays})"  # noqa: S608 - types from the schema


def _pg_array(table: Table, name: str, dialect: Any) -> str:
    """The array type of a column's values. Text as ``text[]``: a cast to ``varchar(n)`` would cut a long
    value silently, where inserting it into the column refuses it."""
    kind = table.c[name].type.compile(dialect)
    return "text[]" if kind.startswith("VARCHAR") else f"{kind}[]"


def uuids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as text, from one ``os.urandom`` call: ``str(uuid.uuid4())`` per row
    cost more than the row's insert."""
    raw = os.urandom(16 * n).hex()
    found = []
    for start in range(0, 32 * n, 32):
        h = raw[start : start + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        found.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return found
