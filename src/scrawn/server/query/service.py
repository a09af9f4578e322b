"""``QueryEvents``: filters, aggregation and grouping over the caller's own events (one project, one
mode), built from a whitelist of fields into parameterised SQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._proto.query.v1 import query_pb2 as pb
from scrawn.money import (
    format_amount,
    from_micros,
    to_micros,
    whole_units_half_even,
)
from scrawn.server.clock import iso
from scrawn.server.db.sums import joined
from scrawn.server.query import repository
from scrawn.server.query.repository import Field, fail, resolve_field

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


async def query_events(
    conn: AsyncConnection, project_id: str, mode: str, req: pb.QueryEventsRequest
) -> pb.QueryEventsResponse:
    if req.limit < 0 or req.limit > MAX_LIMIT:
        raise fail("limit", f"must be 0 (default {DEFAULT_LIMIT}) to {MAX_LIMIT}")
    if req.offset < 0:
        raise fail("offset", "must not be negative")
    limit = req.limit or DEFAULT_LIMIT
    where = req.where if req.HasField("where") else None
    condition = repository.scope(project_id, mode, req.include_voided, where)
    response = pb.QueryEventsResponse()
    response.total = await repository.count(conn, condition)

    if req.HasField("aggregation") and req.aggregation.type != pb.AGGREGATION_TYPE_UNSPECIFIED:
        await _aggregate(conn, req, condition, limit, response)
        return response
    for r in await repository.rows(conn, condition, limit, req.offset):
        response.rows.append(_row(r))
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
            raise fail("aggregation.field", "SUM needs an amount or token field")
        # The raw micro-units (or tokens): exact past 2^63 on both databases.
    elif agg.type != pb.COUNT:
        raise fail("aggregation.type", "must be SUM or COUNT")
    group = (
        resolve_field("group_by.field", req.group_by.field)
        if req.HasField("group_by") and req.group_by.field
        else None
    )
    for r in await repository.aggregate(conn, condition, f, group, limit, req.offset):
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
