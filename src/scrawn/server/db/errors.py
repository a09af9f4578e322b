"""What a database exception means for the caller, so the rpc layer maps it to a code without knowing
SQLAlchemy: a value past what the database stores, an outage worth retrying, or a bug."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from scrawn.money import MoneyError

Kind = Literal["out_of_range", "unavailable", "internal"]


def classify(exc: BaseException) -> Kind:
    """``out_of_range`` for a number past the 64-bit range, ``unavailable`` for a lost connection, a
    locked or unreachable database or an exhausted pool, ``internal`` for anything else."""
    if _out_of_range(exc):
        return "out_of_range"
    if isinstance(exc, OperationalError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return "unavailable"
    return "internal"


def _out_of_range(exc: BaseException) -> bool:
    """SQLite's "integer overflow" is an OperationalError, PostgreSQL's SQLSTATE 22003 a DataError; an amount
    past BIGINT micro-units fails while binding. None of them is an outage."""
    if not isinstance(exc, StatementError):
        return False
    orig = exc.orig
    if isinstance(orig, MoneyError):
        return True
    text = str(orig).lower()
    return (
        "integer overflow" in text
        or "out of range" in text
        or getattr(orig, "sqlstate", None) == "22003"
        or getattr(orig, "pgcode", None) == "22003"
    )
