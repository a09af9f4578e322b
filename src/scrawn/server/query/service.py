"""``QueryEvents``: filters, aggregation and grouping over the caller's own events (one project, one
mode), built from a whitelist of fields into parameterised SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._proto.query.v1 import query_pb2 as pb
from scrawn.errors import ValidationError
from scrawn.money import (
    MoneyError,
    format_amount,
    from_micros,
    parse_decimal,
    to_micros,
    whole_units_half_even,
)
from scrawn.server.clock import iso
from scrawn.server.db.schema import events
from scrawn.server.db.sums import joined, split_sum

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
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


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Query validation failed")


def resolve_field(where: str, name: str) -> Field:
    key = name if name in FIELDS else _SNAKE.get(name)
    if key is None:
        raise _fail(where, f"unknown field {name[:64]!r}; one of {', '.join(FIELDS)}")
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
        raise _fail(where, f"{text[:64]!r} is not a valid {f.kind} value") from None


def build_filter(
    group: pb.FilterGroup, path: str = "where", depth: int = 0, count: list[int] | None = None
) -> Any:
    count = count if count is not None else [0]
    if depth > MAX_DEPTH:
        raise _fail(path, f"filter groups nest more than {MAX_DEPTH} deep")
    parts: list[ColumnElement[bool]] = []
    for i, cond in enumerate(group.conditions):
        count[0] += 1
        if count[0] > MAX_CONDITIONS:
            raise _fail(path, f"more than {MAX_CONDITIONS} conditions")
        where = f"{path}.conditions[{i}]"
        f = resolve_field(f"{where}.field", cond.field)
        op = OPERATORS.get(cond.operator)
        if op is None:
            raise _fail(f"{where}.operator", "must be one of EQ, NEQ, GT, GTE, LT, LTE")
        parts.append(op(f.column, _value(f"{where}.value", f, cond.value)))
    for i, sub in enumerate(group.groups):
        parts.append(build_filter(sub, f"{path}.groups[{i}]", depth + 1, count))
    if not parts:
        return literal(True)
    if group.logical == pb.OR:
        return or_(*parts)
    if group.logical not in (pb.AND, pb.LOGICAL_UNSPECIFIED):
        raise _fail(f"{path}.logical", "must be AND or OR")
    return and_(*parts)


async def query_events(
    conn: AsyncConnection, project_id: str, mode: str, req: pb.QueryEventsRequest
) -> pb.QueryEventsResponse:
    if req.limit < 0 or req.limit > MAX_LIMIT:
        raise _fail("limit", f"must be 0 (default {DEFAULT_LIMIT}) to {MAX_LIMIT}")
    if req.offset < 0:
        raise _fail("offset", "must not be negative")
    limit = req.limit or DEFAULT_LIMIT
    scope = and_(events.c.project_id == project_id, events.c.mode == mode)
    if not req.include_voided:  # a voided event is no longer billed (docs/events.md#voiding-an-event)
        scope = and_(scope, events.c.voided_at.is_(None))
    condition = and_(scope, build_filter(req.where)) if req.HasField("where") else scope
    response = pb.QueryEventsResponse()
    total = await conn.scalar(select(func.count()).select_from(events).where(condition))
    response.total = int(total or 0)

    if req.HasField("aggregation") and req.aggregation.type != pb.AGGREGATION_TYPE_UNSPECIFIED:
        await _aggregate(conn, req, condition, limit, response)
        return response
    rows = await conn.execute(
        select(events)
        .where(condition)
        .order_by(events.c.ingested_at.desc(), events.c.id)
        .limit(limit)
        .offset(req.offset)
    )
    for r in rows:
        response.rows.append(_row(r._mapping))
    return response


async def _aggregate(
    conn: AsyncConnection,
    req: pb.QueryEventsRequest,
    condition: Any,
    limit: int,
    response: pb.QueryEventsResponse,
) -> None:
    agg = req.aggregation
    f: Field | None = None
    if agg.type == pb.SUM:
        f = resolve_field("aggregation.field", agg.field)
        if f.kind not in ("money", "int"):
            raise _fail("aggregation.field", "SUM needs an amount or token field")
        # The raw micro-units (or tokens), summed in two halves: exact past 2^63 on both databases.
        cols: list[Any] = split_sum(f.column, "value")
    elif agg.type == pb.COUNT:
        cols = [func.count().label("value")]
    else:
        raise _fail("aggregation.type", "must be SUM or COUNT")
    group = (
        resolve_field("group_by.field", req.group_by.field)
        if req.HasField("group_by") and req.group_by.field
        else None
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
        stmt = ordered.limit(limit).offset(req.offset)
    for r in await conn.execute(stmt):
        raw = (joined(r, "value") or 0) if f is not None else int(r.value or 0)
        text = format_amount(from_micros(raw)) if f is not None and f.kind == "money" else str(raw)
        row = pb.AggregationRow(agg_value=text)
        if group is not None and r.group is not None:
            g = r.group
            row.group_value = format_amount(g) if isinstance(g, Decimal) else str(g)
        response.agg_rows.append(row)


_WHOLE = {
    "debit_amount": "debit",
    "input_debit_amount": "input_debit",
    "output_debit_amount": "output_debit",
    "input_cache_debit_amount": "input_cache_debit",
}
_EXACT = {f"{k}_exact": v for k, v in _WHOLE.items()} | {
    "output_cache_debit_amount_exact": "output_cache_debit"
}
_PLAIN = (
    "basic_usage_type",
    "model",
    "provider",
    "metadata",
    "input_tokens",
    "output_tokens",
    "input_cache_tokens",
    "output_cache_tokens",
)


def _row(m: Any) -> pb.EventRow:
    row = pb.EventRow(
        event_id=m["id"],
        event_type=m["event_type"],
        user_id=m["user_id"],
        reported_timestamp=iso(m["reported_at"] * 1000),
        ingested_timestamp=iso(m["ingested_at"]),
        idempotency_key=m["idempotency_key"],
        mode=m["mode"],
    )
    for name, col in _WHOLE.items():
        if m[col] is not None:
            setattr(row, name, whole_units_half_even(to_micros(m[col])))
    for name, col in _EXACT.items():
        if m[col] is not None:
            setattr(row, name, format_amount(m[col]))
    for name in _PLAIN:
        if m[name] is not None:
            setattr(row, name, m[name])
    if m["voided_at"] is not None:
        row.voided_timestamp = iso(m["voided_at"])
        row.void_reason = m["void_reason"] or ""
    return row
