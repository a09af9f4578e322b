"""All SQL of ``QueryEvents``: the whitelist of fields and its columns, filters built from it into
parameterised SQL, and the count, row and aggregate queries over one project and mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, RowMapping, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._proto.query.v1 import query_pb2 as pb
from scrawn.errors import ValidationError
from scrawn.money import MoneyError, parse_decimal
from scrawn.server.db.schema import events
from scrawn.server.db.sums import split_sum

MAX_DEPTH, MAX_CONDITIONS = 16, 200


@dataclass(frozen=True)
class Field:
    column: Any
    kind: str  # text | int | money | seconds | ms


FIELDS: dict[str, Field] = {
    "eventId": Field(events.c.id, "text"),
    "eventType": Field(events.c.event_type, "text"),
    "userId": Field(events.c.user_id, "text"),
    "idempotencyKey": Field(events.c.idempotency_key, "text"),
    "reportedTimestamp": Field(events.c.reported_at, "seconds"),
    "ingestedTimestamp": Field(events.c.ingested_at, "ms"),
    "basicUsageType": Field(events.c.basic_usage_type, "text"),
    "debitAmount": Field(events.c.debit, "money"),
    "model": Field(events.c.model, "text"),
    "provider": Field(events.c.provider, "text"),
    "inputTokens": Field(events.c.input_tokens, "int"),
    "outputTokens": Field(events.c.output_tokens, "int"),
    "inputCacheTokens": Field(events.c.input_cache_tokens, "int"),
    "outputCacheTokens": Field(events.c.output_cache_tokens, "int"),
    "inputDebitAmount": Field(events.c.input_debit, "money"),
    "outputDebitAmount": Field(events.c.output_debit, "money"),
    "inputCacheDebitAmount": Field(events.c.input_cache_debit, "money"),
    "outputCacheDebitAmount": Field(events.c.output_cache_debit, "money"),
}
_SNAKE = {"".join("_" + c.lower() if c.isupper() else c for c in k): k for k in FIELDS}
OPERATORS = {
    pb.EQ: lambda c, v: c == v,
    pb.NEQ: lambda c, v: c != v,
    pb.GT: lambda c, v: c > v,
    pb.GTE: lambda c, v: c >= v,
    pb.LT: lambda c, v: c < v,
    pb.LTE: lambda c, v: c <= v,
}


def fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Query validation failed")


def resolve_field(where: str, name: str) -> Field:
    key = name if name in FIELDS else _SNAKE.get(name)
    if key is None:
        raise fail(where, f"unknown field {name[:64]!r}; one of {', '.join(FIELDS)}")
    return FIELDS[key]


def _value(where: str, f: Field, text: str) -> Any:
    try:
        if f.kind == "text":
            return text
        if f.kind == "money":
            return parse_decimal(text)
        if f.kind in ("seconds", "ms") and not text.strip().lstrip("-").isdigit():
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            seconds = Decimal(str(moment.timestamp()))
            return int(seconds) if f.kind == "seconds" else int(seconds * 1000)
        return int(text)
    except (ValueError, MoneyError):
        raise fail(where, f"{text[:64]!r} is not a valid {f.kind} value") from None


def build_filter(
    group: pb.FilterGroup, path: str = "where", depth: int = 0, count: list[int] | None = None
) -> Any:
    count = count if count is not None else [0]
    if depth > MAX_DEPTH:
        raise fail(path, f"filter groups nest more than {MAX_DEPTH} deep")
    parts: list[ColumnElement[bool]] = []
    for i, cond in enumerate(group.conditions):
        count[0] += 1
        if count[0] > MAX_CONDITIONS:
            raise fail(path, f"more than {MAX_CONDITIONS} conditions")
        where = f"{path}.conditions[{i}]"
        f = resolve_field(f"{where}.field", cond.field)
        op = OPERATORS.get(cond.operator)
        if op is None:
            raise fail(f"{where}.operator", "must be one of EQ, NEQ, GT, GTE, LT, LTE")
        parts.append(op(f.column, _value(f"{where}.value", f, cond.value)))
    for i, sub in enumerate(group.groups):
        parts.append(build_filter(sub, f"{path}.groups[{i}]", depth + 1, count))
    if not parts:
        return literal(True)
    if group.logical == pb.OR:
        return or_(*parts)
    if group.logical not in (pb.AND, pb.LOGICAL_UNSPECIFIED):
        raise fail(f"{path}.logical", "must be AND or OR")
    return and_(*parts)


def scope(project_id: str, mode: str, include_voided: bool, where: pb.FilterGroup | None) -> Any:
    """The caller's own events, without voided ones unless asked (docs/events.md#voiding-an-event)."""
    condition = and_(events.c.project_id == project_id, events.c.mode == mode)
    if not include_voided:
        condition = and_(condition, events.c.voided_at.is_(None))
    return and_(condition, build_filter(where)) if where is not None else condition


async def count(conn: AsyncConnection, condition: Any) -> int:
    return int(await conn.scalar(select(func.count()).select_from(events).where(condition)) or 0)


async def rows(conn: AsyncConnection, condition: Any, limit: int, offset: int) -> list[RowMapping]:
    """Matching events, newest first."""
    found = await conn.execute(
        select(events)
        .where(condition)
        .order_by(events.c.ingested_at.desc(), events.c.id)
        .limit(limit)
        .offset(offset)
    )
    return [r._mapping for r in found]


async def aggregate(
    conn: AsyncConnection, condition: Any, summed: Field | None, group: Field | None, limit: int, offset: int
) -> Sequence[Row[Any]]:
    """SUM of ``summed`` (in two halves: exact past 2^63 on both databases) or COUNT when it is None,
    optionally per ``group`` (as the ``group`` column)."""
    cols: list[Any] = (
        split_sum(summed.column, "value") if summed is not None else [func.count().label("value")]
    )
    if group is not None:
        cols.insert(0, group.column.label("group"))
    stmt = select(*cols).select_from(events).where(condition)
    if group is not None:
        # NULLS FIRST explicitly: SQLite and PostgreSQL default to opposite ends (same answer on both).
        # Text in code-point order (SQLite's BINARY) whatever the PostgreSQL database's collation is.
        binary = group.kind == "text" and conn.dialect.name == "postgresql"
        key = group.column.collate("C") if binary else group.column
        ordered = stmt.group_by(group.column).order_by(key.asc().nulls_first())
        stmt = ordered.limit(limit).offset(offset)
    return (await conn.execute(stmt)).all()
