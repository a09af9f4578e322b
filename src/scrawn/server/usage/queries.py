"""``GetUsage`` and ``GetUsageSummary``: usage records filtered by user, context, model, usage type,
transaction and time range, always within the caller's project and mode; paged newest first, or summed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import from_micros
from scrawn.server import paging
from scrawn.server.db.sums import joined
from scrawn.server.limits import MAX_USER_ID
from scrawn.server.usage import repository
from scrawn.server.usage.records import CONTEXT, CONTEXTS, check_model, check_usage_type, fail
from scrawn.server.usage.types import Filter


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


async def list_records(
    conn: AsyncConnection, project_id: str, mode: str, f: Filter, limit: int, token: str
) -> tuple[list[Any], str]:
    size = paging.page_size(limit, context=CONTEXT)
    cursor = paging.cursor(token, context=CONTEXT)
    rows = await repository.page(conn, project_id, mode, f, cursor, size + 1)
    return paging.next_page(rows, size, lambda row: (row.occurred_at, row.id))


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
    totals = totals_of(await repository.totals(conn, project_id, mode, f))

    async def grouped(column: str) -> list[tuple[str, Totals]]:
        rows = await repository.totals_by(conn, project_id, mode, f, column)
        found = [(row.key, totals_of(row)) for row in rows]
        return sorted(found, key=lambda kv: (-kv[1].cost, kv[0]))  # most expensive first

    return Summary(totals, await grouped("model"), await grouped("context"))
