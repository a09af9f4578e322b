"""``GetUsage`` and ``GetUsageSummary``: usage records filtered by user, context, model, usage type,
transaction and time range, always within the caller's project and mode; paged newest first, or summed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import from_micros
from scrawn.server.db.schema import usage_records as table
from scrawn.server.db.sums import joined, split_sum
from scrawn.server.limits import MAX_USER_ID
from scrawn.server.usage.records import CONTEXTS, check_model, check_usage_type, fail

DEFAULT_PAGE, MAX_PAGE = 50, 500


@dataclass(frozen=True)
class Filter:
    user_id: str | None = None
    context: str | None = None
    model: str | None = None
    usage_type: str | None = None
    transaction_id: str | None = None
    start: int | None = None  # Unix ms, inclusive
    end: int | None = None  # Unix ms, exclusive


def check_filter(f: Any, *, require_range: bool = False) -> Filter:
    """A ``usage.v1.UsageFilter`` (or None) → Filter; every problem names its field."""
    if f is None:
        if require_range:
            raise fail("filter.startTime", "is required")
        return Filter()
    user = f.userId or None
    if user is not None and (len(user) > MAX_USER_ID or "\x00" in user):
        raise fail("filter.userId", f"must be at most {MAX_USER_ID} characters, without NUL")
    context = f.context or None
    if context is not None and context not in CONTEXTS:
        raise fail("filter.context", "must be customer or system")
    model = check_model(f.model, "filter.model") if f.model else None
    usage_type = check_usage_type(f.usageType, "filter.usageType") if f.usageType else None
    transaction = None
    if f.transactionId:
        try:
            transaction = str(uuid.UUID(f.transactionId))
        except ValueError:
            raise fail("filter.transactionId", "must be a UUID") from None
    if f.startTime < 0:
        raise fail("filter.startTime", "must be Unix milliseconds, not negative")
    if f.endTime < 0:
        raise fail("filter.endTime", "must be Unix milliseconds, not negative")
    start, end = f.startTime or None, f.endTime or None
    if require_range and start is None:
        raise fail("filter.startTime", "is required (Unix milliseconds)")
    if require_range and end is None:
        raise fail("filter.endTime", "is required (Unix milliseconds)")
    if start is not None and end is not None and end <= start:
        raise fail("filter.endTime", "must be after startTime")
    return Filter(user, context, model, usage_type, transaction, start, end)


def conditions(project_id: str, mode: str, f: Filter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [table.c.project_id == project_id, table.c.mode == mode]
    if f.user_id is not None:
        where.append(table.c.user_id == f.user_id)
    if f.context is not None:
        where.append(table.c.context == f.context)
    if f.model is not None:
        where.append(table.c.model == f.model)
    if f.usage_type is not None:
        where.append(table.c.usage_type == f.usage_type)
    if f.transaction_id is not None:
        where.append(table.c.transaction_id == f.transaction_id)
    if f.start is not None:
        where.append(table.c.occurred_at >= f.start)
    if f.end is not None:
        where.append(table.c.occurred_at < f.end)
    return where


def page_size(limit: int) -> int:
    if limit < 0 or limit > MAX_PAGE:
        raise fail("limit", f"must be 0 (default {DEFAULT_PAGE}) to {MAX_PAGE}")
    return limit or DEFAULT_PAGE


def _cursor(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    at, _, ident = token.partition(":")
    if not at.isdigit() or not ident:
        raise fail("pageToken", "is not a token this server gave out")
    return int(at), ident


async def list_records(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, limit: int, token: str
) -> tuple[list[Any], str]:
    size, cursor = page_size(limit), _cursor(token)
    stmt = select(table).where(*conditions(project_id, mode, f))
    if cursor is not None:
        stmt = stmt.where(
            or_(
                table.c.occurred_at < cursor[0],
                and_(table.c.occurred_at == cursor[0], table.c.id < cursor[1]),
            )
        )
    rows = list(
        await conn.execute(stmt.order_by(table.c.occurred_at.desc(), table.c.id.desc()).limit(size + 1))
    )
    more = len(rows) > size
    rows = rows[:size]
    return rows, f"{rows[-1].occurred_at}:{rows[-1].id}" if more else ""


@dataclass
class Totals:
    cost: Decimal = Decimal(0)
    records: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_ms: int = 0

    def add(self, other: Totals) -> None:
        self.cost += other.cost
        self.records += other.records
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.audio_ms += other.audio_ms


@dataclass
class Summary:
    totals: Totals
    by_model: list[tuple[str, Totals]] = field(default_factory=list)
    by_context: list[tuple[str, Totals]] = field(default_factory=list)


_SUMMED = ("cost", "input_tokens", "output_tokens", "cached_tokens", "cache_write_tokens", "audio_ms")


def total_columns() -> list[Any]:
    """The sums behind :class:`Totals`, each split in two halves so it stays exact past 2^63 on SQLite too
    (docs/money.md#exact-sums)."""
    columns: list[Any] = [func.count().label("records")]
    for name in _SUMMED:
        columns += split_sum(table.c[name], name)
    return columns


def totals_of(row: Any) -> Totals:
    """A row of ``total_columns()``; a SUM is NULL over no rows."""
    return Totals(
        cost=from_micros(joined(row, "cost") or 0),
        records=int(row.records or 0),
        input_tokens=joined(row, "input_tokens") or 0,
        output_tokens=joined(row, "output_tokens") or 0,
        cached_tokens=joined(row, "cached_tokens") or 0,
        cache_write_tokens=joined(row, "cache_write_tokens") or 0,
        audio_ms=joined(row, "audio_ms") or 0,
    )


async def summary(conn: AsyncConnection, project_id: str, mode: str, f: Filter) -> Summary:
    where = conditions(project_id, mode, f)
    totals = totals_of((await conn.execute(select(*total_columns()).where(*where))).one())

    async def grouped(column: Any) -> list[tuple[str, Totals]]:
        stmt = select(column.label("key"), *total_columns()).where(*where).group_by(column)
        rows = await conn.execute(stmt)
        found = [(row.key, totals_of(row)) for row in rows]
        return sorted(found, key=lambda kv: (-kv[1].cost, kv[0]))  # most expensive first

    return Summary(totals, await grouped(table.c.model), await grouped(table.c.context))
