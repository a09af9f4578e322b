"""Exact sums of BIGINT columns (micro-units, tokens) that give the same answer on SQLite and PostgreSQL
however large the total (docs/money.md#exact-sums).

SQLite's ``SUM()`` of integers fails with "integer overflow" once a total passes 2⁶³ (and ``total()`` is a
float); PostgreSQL's ``SUM(bigint)`` is NUMERIC. So each value is split into its high and low 32 bits
(``x = (x >> 32) · 2³² + (x & 0xFFFFFFFF)``, exact for negative values too: the shift is arithmetic on
both databases), the database sums each half (each stays far inside 64 bits: 2³¹ rows of the largest
values), and Python puts the halves back together as an unbounded integer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, cast, func, literal_column
from sqlalchemy.sql.elements import Label

SHIFT = 32
# Inline constants: PostgreSQL has ``bigint >> integer`` but no ``bigint >> bigint`` for a bound parameter.
_SHIFT_BY: ColumnElement[int] = literal_column(str(SHIFT), BigInteger)
_LOW: ColumnElement[int] = literal_column(str(2**SHIFT - 1), BigInteger)


def split_sum(column: ColumnElement[Any], label: str) -> list[Label[Any]]:
    """Two labelled aggregates, ``<label>_hi`` and ``<label>_lo``; read them back with :func:`joined`."""
    raw = cast(column, BigInteger)  # a real cast: PostgreSQL shifts an int4 by 32 modulo 32
    return [
        func.sum(raw.op(">>", return_type=BigInteger)(_SHIFT_BY)).label(f"{label}_hi"),
        func.sum(raw.op("&", return_type=BigInteger)(_LOW)).label(f"{label}_lo"),
    ]


def joined(row: Any, label: str) -> int | None:
    """The exact total of :func:`split_sum` columns in ``row``; None when it summed no (non-NULL) value."""
    hi, lo = getattr(row, f"{label}_hi"), getattr(row, f"{label}_lo")
    if hi is None:
        return None
    total: int = int(hi) * 2**SHIFT + int(lo)
    return total
