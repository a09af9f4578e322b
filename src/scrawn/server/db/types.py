"""The one column type for money: Decimal minor units in Python, BIGINT micro-units in the database."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from scrawn.money import from_micros, to_micros


class Micros(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, int):  # already micro-units (e.g. a SUM fed back in)
            raise TypeError("Micros columns take Decimal minor units, not int")
        return to_micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        # PostgreSQL's SUM(bigint) is NUMERIC (a Decimal); SQLite's is an int. Both are whole micro-units.
        return None if value is None else from_micros(int(value))
