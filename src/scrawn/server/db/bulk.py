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
    kept, values = given(table, columns, rows)
    if conn.dialect.name == "postgresql":
        sql = f"{pg_insert(table, kept)} {tail}{back}"
        result = await conn.exec_driver_sql(sql, tuple(values))  # one tuple: a list would be executemany
        return list(result) if returning else []
    if len(kept) < len(columns):
        rows = list(zip(*values, strict=True))
    head = f"{_into(table, kept)} VALUES "
    one = f"({', '.join('?' * len(kept))})"
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


def given(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The columns some row gives a value, and their values (one list per column: ``pg_insert``'s
    parameters). A nullable column without a default that every row leaves NULL is left out of the
    statement: it is NULL all the same, and each value passed costs the driver and the database work (most
    of ``events``' columns belong to AI or typed events only)."""
    values = [list(c) for c in zip(*rows, strict=True)]
    keep = [i for i, v in enumerate(values) if not (_optional(table, columns[i]) and v.count(None) == len(v))]
    if len(keep) == len(values):
        return tuple(columns), values
    return tuple(columns[i] for i in keep), [values[i] for i in keep]


@cache
def _optional(table: Table, name: str) -> bool:
    column = table.c[name]
    return bool(column.nullable) and column.default is None and column.server_default is None


@cache
def pg_insert(table: Table, columns: tuple[str, ...]) -> str:
    """PostgreSQL's ``INSERT INTO table (columns) SELECT * FROM unnest($1::type[], …)``: the columns as
    arrays $1…$n (``given``)."""
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
