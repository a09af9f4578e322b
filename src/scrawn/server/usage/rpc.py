"""``usage.v1.UsageService``: TrackEvents (the events domain's ``EventRpc.track_events``) plus the model price
list, cost calculation, usage records, summaries and time series. Live and test keys act in their mode;
dash keys pick it with ``x-scrawn-mode``. Every query is scoped to the caller's project and mode."""

from __future__ import annotations

from functools import partial
from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.usage.v1 import usage_pb2 as pb
from scrawn.errors import OutOfRangeError
from scrawn.money import format_amount
from scrawn.server.db.engine import Database, now_ms
from scrawn.server.events.rpc import EventRpc
from scrawn.server.events.service import EventService
from scrawn.server.keys.service import KeyService
from scrawn.server.pricing import models, overrides
from scrawn.server.rpc import INGEST_ROLES, Rpc, Scoped, handler
from scrawn.server.usage import queries, records, series
from scrawn.server.usage.records import fail
from scrawn.server.usage.types import Filter

DEFAULT_MODELS, MAX_MODELS = 100, 1000


def _usd(value: Any) -> str:
    return "" if value is None else format_amount(value)


def model_price(r: models.Rates) -> pb.ModelPrice:
    return pb.ModelPrice(
        model=r.model,
        provider=r.provider,
        name=r.name,
        source=r.source,
        **{name: _usd(getattr(r, attr)) for name, attr in overrides.RATE_FIELDS.items()},
        tiered=r.tiered,
        overrideId=r.override_id or "",
        effectiveFrom=r.effective_from or 0,
        inForce=r.in_force,
    )


def cost_breakdown(c: records.RoundedCost) -> pb.CostBreakdown:
    return pb.CostBreakdown(
        input=format_amount(c.input),
        output=format_amount(c.output),
        cachedInput=format_amount(c.cached),
        cacheWrite=format_amount(c.cache_write),
        audio=format_amount(c.audio),
        total=format_amount(c.total),
        currency=c.currency,
        model=c.model,
        provider=c.provider,
        source=c.source,
        overrideId=c.override_id or "",
        priceBook=c.price_book if c.source == "book" else "",
    )


def usage_record(row: Any) -> pb.UsageRecord:
    return pb.UsageRecord(
        id=row.id,
        userId=row.user_id,
        context=row.context,
        transactionId=row.transaction_id or "",
        reservationId=row.reservation_id or "",
        model=row.model,
        provider=row.provider,
        usageType=row.usage_type,
        inputTokens=row.input_tokens,
        outputTokens=row.output_tokens,
        cachedTokens=row.cached_tokens,
        cacheWriteTokens=row.cache_write_tokens,
        audioSeconds=records.audio_seconds(row.audio_ms),
        cost=cost_breakdown(records.cost_of(row)),
        description=row.description or "",
        idempotencyKey=row.idempotency_key,
        timestamp=row.occurred_at,
        createdAt=row.created_at,
    )


INT64_MAX = 2**63 - 1


def usage_totals(t: queries.Totals) -> pb.UsageTotals:
    tokens = {
        "inputTokens": t.input_tokens,
        "outputTokens": t.output_tokens,
        "cachedTokens": t.cached_tokens,
        "cacheWriteTokens": t.cache_write_tokens,
    }
    for name, value in tokens.items():  # exact sums; the wire's token totals are int64 (cost is a string)
        if value > INT64_MAX:
            raise OutOfRangeError(
                f"totals.{name}: the total passes the int64 range of the wire; narrow the filter",
                field=f"totals.{name}",
            )
    return pb.UsageTotals(
        cost=format_amount(t.cost),
        records=t.records,
        audioSeconds=records.audio_seconds(t.audio_ms),
        **tokens,
    )


def usage_summary(s: queries.Summary) -> pb.UsageSummary:
    return pb.UsageSummary(
        totals=usage_totals(s.totals),
        byModel=[pb.UsageGroup(key=k, totals=usage_totals(t)) for k, t in s.by_model],
        byContext=[pb.UsageGroup(key=k, totals=usage_totals(t)) for k, t in s.by_context],
    )


def _filter(request: Any, *, require_range: bool = False) -> Filter:
    return queries.check_filter(
        request.filter if request.HasField("filter") else None, require_range=require_range
    )


def _recorded(done: tuple[Any, bool]) -> pb.RecordUsageResponse:
    row, duplicate = done
    return pb.RecordUsageResponse(record=usage_record(row), duplicate=duplicate)


class UsageServiceRpc(Rpc):
    def __init__(self, db: Database, keys: KeyService, events: EventService) -> None:
        super().__init__(db, keys)
        self._track = EventRpc(db, keys, events)  # ingest belongs to the events domain

    async def track_events(
        self, request: pb.TrackEventsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.TrackEventsResponse:
        return await self._track.track_events(request, ctx)

    @handler
    async def list_models(
        self, request: pb.ListModelsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListModelsResponse:
        caller = await self._caller(ctx)
        if request.at < 0:
            raise fail("at", "must be Unix milliseconds, not negative")
        if len(request.provider) > overrides.MAX_PROVIDER or len(request.search) > overrides.MAX_MODEL:
            field = "provider" if len(request.provider) > overrides.MAX_PROVIDER else "search"
            raise fail(field, "is too long")
        if not 0 <= request.limit <= MAX_MODELS:
            raise fail("limit", f"must be 0 (default {DEFAULT_MODELS}) to {MAX_MODELS}")
        if request.pageToken and not request.pageToken.isdigit():
            raise fail("pageToken", "is not a token this server gave out")
        size, offset = request.limit or DEFAULT_MODELS, int(request.pageToken or 0)
        async with self._db.read() as conn:
            found = await overrides.list_overrides(conn, caller.project_id)
        listed = models.price_list(
            found, request.at or now_ms(), provider=request.provider, search=request.search
        )
        page = listed[offset : offset + size]
        more = offset + size < len(listed)
        return pb.ListModelsResponse(
            models=[model_price(r) for r in page],
            nextPageToken=str(offset + size) if more else "",
            priceBook=models.SOURCE,
        )

    @handler
    async def calculate_cost(
        self, request: pb.CalculateCostRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CalculateCostResponse:
        caller = await self._caller(ctx)
        call = records.check_call(request)
        async with self._db.read() as conn:
            cost = await records.calculate(conn, caller.project_id, call)
        return pb.CalculateCostResponse(cost=cost_breakdown(cost))

    record_usage = Scoped(
        "write",
        lambda r: partial(records.record, inp=records.check_record(r)),
        _recorded,
        INGEST_ROLES,
        "record usage",
    )

    @handler
    async def get_usage(
        self, request: pb.GetUsageRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetUsageResponse:
        caller = await self._caller(ctx)
        f = _filter(request)
        if request.summary:
            return pb.GetUsageResponse(
                summary=usage_summary(await self._scoped("read", caller, queries.summary, f))
            )
        rows, token = await self._scoped(
            "read", caller, queries.list_records, f, request.limit, request.pageToken
        )
        return pb.GetUsageResponse(records=[usage_record(r) for r in rows], nextPageToken=token)

    get_usage_summary = Scoped("read", lambda r: partial(queries.summary, f=_filter(r)), usage_summary)

    @handler
    async def get_usage_series(
        self, request: pb.GetUsageSeriesRequest, ctx: RequestContext[Any, Any]
    ) -> pb.GetUsageSeriesResponse:
        caller = await self._caller(ctx)
        bucket = series.check_bucket(request.bucket)
        tz = series.check_time_zone(request.timeZone)
        f = _filter(request, require_range=True)
        found = await self._scoped("read", caller, series.series, f, tz, bucket)
        return pb.GetUsageSeriesResponse(
            buckets=[
                pb.UsageBucket(
                    start=b.label, startTime=b.start_ms, endTime=b.end_ms, totals=usage_totals(b.totals)
                )
                for b in found
            ],
            bucket=bucket,
            timeZone=tz.key,
        )
