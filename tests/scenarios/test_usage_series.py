"""GetUsageSummary and GetUsageSeries equal an independent computation over the same records, across DST
changes (Europe/Berlin, America/New_York) and month boundaries, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import USAGE, WALLET, GrpcClient, RpcError, bearer

USER = "series-user"
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku-latest"]
# Instants around the 2025 DST changes and month ends (UTC): Berlin 03-30 01:00, 10-26 01:00;
# New York 03-09 07:00, 11-02 06:00; plus the ends of February, March, October and November.
ANCHORS = [
    datetime(2025, 3, 30, 1, tzinfo=UTC),
    datetime(2025, 10, 26, 1, tzinfo=UTC),
    datetime(2025, 3, 9, 7, tzinfo=UTC),
    datetime(2025, 11, 2, 6, tzinfo=UTC),
    datetime(2025, 3, 1, tzinfo=UTC),
    datetime(2025, 4, 1, tzinfo=UTC),
    datetime(2025, 11, 1, tzinfo=UTC),
    datetime(2025, 12, 1, tzinfo=UTC),
]


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.fixture(scope="module")
def recorded(module_server) -> list[dict]:
    """~200 records (customer and system, three models) near every anchor: offsets up to ±30 hours."""
    rng = random.Random(20250330)
    stamps = {ms(a) + off for a in ANCHORS for off in (-1, 0, 1, 3_599_999, 3_600_000, -3_600_000)}
    stamps |= {ms(a) + rng.randrange(-30 * 3_600_000, 30 * 3_600_000) for a in ANCHORS for _ in range(18)}
    found = []
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)
        c.unary(
            WALLET + "Credit",
            w.CreditRequest(userId=USER, amount="1000000", idempotencyKey=str(uuid.uuid4())),
            auth,
        )
        hold = c.unary(
            WALLET + "CreateReservation",
            w.CreateReservationRequest(userId=USER, amount="1000", idempotencyKey=str(uuid.uuid4())),
            auth,
        )
        transaction = c.unary(
            WALLET + "ConfirmReservation",
            w.ConfirmReservationRequest(reservationId=hold.id, actualAmount="999"),
            auth,
        ).transactionId
        for i, at in enumerate(sorted(stamps)):
            customer = i % 3 != 0
            inp = rng.randrange(1, 200_000)
            res = c.unary(
                USAGE + "RecordUsage",
                u.RecordUsageRequest(
                    userId=USER,
                    context="customer" if customer else "system",
                    transactionId=transaction if customer else "",
                    model=MODELS[i % len(MODELS)],
                    inputTokens=inp,
                    outputTokens=rng.randrange(0, 5_000),
                    cachedTokens=rng.randrange(0, inp),
                    idempotencyKey=f"series-{i}",
                    timestamp=at,
                ),
                auth,
            ).record
            found.append(
                {
                    "at": res.timestamp,
                    "model": res.model,
                    "context": res.context,
                    "cost": Decimal(res.cost.total),
                    "input": res.inputTokens,
                    "output": res.outputTokens,
                    "cached": res.cachedTokens,
                }
            )
    assert len(found) == len(stamps)
    return found


@pytest.fixture
def usage(module_server):
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)
        yield lambda method, request: c.unary(USAGE + method, request, auth)


def totals(records: list[dict]) -> tuple:
    return (
        sum((r["cost"] for r in records), Decimal(0)),
        len(records),
        sum(r["input"] for r in records),
        sum(r["output"] for r in records),
        sum(r["cached"] for r in records),
    )


def got(t: u.UsageTotals) -> tuple:
    return (Decimal(t.cost), t.records, t.inputTokens, t.outputTokens, t.cachedTokens)


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, None), (datetime(2025, 3, 29, 13, 17, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC))],
)
def test_summary_equals_an_independent_sum(usage, recorded, start, end) -> None:
    chosen = [
        r for r in recorded if (start is None or r["at"] >= ms(start)) and (end is None or r["at"] < ms(end))
    ]
    f = u.UsageFilter(userId=USER, startTime=ms(start) if start else 0, endTime=ms(end) if end else 0)
    summary = usage("GetUsageSummary", u.GetUsageSummaryRequest(filter=f))
    assert got(summary.totals) == totals(chosen)
    for groups, field in ((summary.byModel, "model"), (summary.byContext, "context")):
        expected: dict[str, list[dict]] = defaultdict(list)
        for r in chosen:
            expected[r[field]].append(r)
        assert {g.key: got(g.totals) for g in groups} == {k: totals(v) for k, v in expected.items()}
        costs = [Decimal(g.totals.cost) for g in groups]
        assert costs == sorted(costs, reverse=True)
    via_get = usage("GetUsage", u.GetUsageRequest(filter=f, summary=True)).summary
    assert via_get == summary
    only_system = usage(
        "GetUsageSummary", u.GetUsageSummaryRequest(filter=u.UsageFilter(userId=USER, context="system"))
    )
    assert got(only_system.totals) == totals([r for r in recorded if r["context"] == "system"])


def label(at_ms: int, tz: ZoneInfo, bucket: str) -> str:
    """The local start of the calendar hour/day/month holding an instant, ISO 8601 with its offset: computed
    directly from the local time (the repeated fall-back hour keeps its own offset)."""
    local = datetime.fromtimestamp(at_ms / 1000, tz)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0).isoformat()
    start = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if bucket == "month":
        start = start.replace(day=1)
    # the wall-clock midnight's own offset (it may differ from the instant's after a DST change)
    return datetime(start.year, start.month, start.day, tzinfo=tz).isoformat()


CASES = [
    (
        "Europe/Berlin",
        "hour",
        datetime(2025, 3, 29, 22, 10, tzinfo=UTC),
        datetime(2025, 3, 30, 4, tzinfo=UTC),
    ),
    (
        "Europe/Berlin",
        "hour",
        datetime(2025, 10, 25, 22, tzinfo=UTC),
        datetime(2025, 10, 26, 4, 20, tzinfo=UTC),
    ),
    ("Europe/Berlin", "day", datetime(2025, 3, 28, 7, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC)),
    ("Europe/Berlin", "day", datetime(2025, 10, 24, tzinfo=UTC), datetime(2025, 11, 2, 12, tzinfo=UTC)),
    ("Europe/Berlin", "month", datetime(2025, 2, 10, tzinfo=UTC), datetime(2025, 12, 3, tzinfo=UTC)),
    ("America/New_York", "hour", datetime(2025, 3, 9, 3, tzinfo=UTC), datetime(2025, 3, 9, 10, tzinfo=UTC)),
    ("America/New_York", "hour", datetime(2025, 11, 2, 3, tzinfo=UTC), datetime(2025, 11, 2, 9, tzinfo=UTC)),
    ("America/New_York", "day", datetime(2025, 2, 27, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC)),
    ("America/New_York", "day", datetime(2025, 10, 30, tzinfo=UTC), datetime(2025, 11, 4, tzinfo=UTC)),
    ("America/New_York", "month", datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ("UTC", "day", datetime(2025, 2, 27, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC)),
    ("Asia/Kolkata", "hour", datetime(2025, 3, 31, 20, tzinfo=UTC), datetime(2025, 4, 1, 2, tzinfo=UTC)),
]


@pytest.mark.parametrize(("zone", "bucket", "start", "end"), CASES)
def test_series_equals_an_independent_computation(usage, recorded, zone, bucket, start, end) -> None:
    tz = ZoneInfo(zone)
    res = usage(
        "GetUsageSeries",
        u.GetUsageSeriesRequest(
            filter=u.UsageFilter(userId=USER, startTime=ms(start), endTime=ms(end)),
            bucket=bucket,
            timeZone=zone,
        ),
    )
    assert (res.bucket, res.timeZone) == (bucket, zone)
    # Every label in the range, walking in quarter-hours (every offset here is a multiple of 15 minutes).
    labels: list[str] = []
    step = ms(start) - ms(start) % 900_000
    while step < ms(end):
        name = label(max(step, ms(start)), tz, bucket)
        if not labels or labels[-1] != name:
            labels.append(name)
        step += 900_000
    assert [b.start for b in res.buckets] == labels
    for b, nxt in zip(res.buckets, res.buckets[1:], strict=False):
        assert b.startTime == ms(datetime.fromisoformat(b.start)) and b.endTime == nxt.startTime
    assert res.buckets[0].startTime <= ms(start) < res.buckets[0].endTime
    assert res.buckets[-1].startTime < ms(end) <= res.buckets[-1].endTime
    grouped: dict[str, list[dict]] = defaultdict(list)
    for r in recorded:
        if ms(start) <= r["at"] < ms(end):
            grouped[label(r["at"], tz, bucket)].append(r)
    assert {b.start: got(b.totals) for b in res.buckets} == {
        name: totals(grouped.get(name, [])) for name in labels
    }
    assert sum(b.totals.records for b in res.buckets) > 0


def test_dst_days_and_hours_have_their_true_lengths(usage, recorded) -> None:
    def series(zone: str, bucket: str, start: datetime, end: datetime) -> list[u.UsageBucket]:
        f = u.UsageFilter(userId=USER, startTime=ms(start), endTime=ms(end))
        return list(
            usage("GetUsageSeries", u.GetUsageSeriesRequest(filter=f, bucket=bucket, timeZone=zone)).buckets
        )

    hours = {
        b.start: b.endTime - b.startTime
        for b in series(
            "Europe/Berlin", "day", datetime(2025, 3, 29, tzinfo=UTC), datetime(2025, 3, 31, tzinfo=UTC)
        )
    }
    assert hours["2025-03-30T00:00:00+01:00"] == 23 * 3_600_000
    fall = series(
        "Europe/Berlin", "hour", datetime(2025, 10, 25, 23, tzinfo=UTC), datetime(2025, 10, 26, 3, tzinfo=UTC)
    )
    assert [b.start for b in fall] == [
        "2025-10-26T01:00:00+02:00",
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:00:00+01:00",
        "2025-10-26T03:00:00+01:00",
    ]
    spring = series(
        "America/New_York", "hour", datetime(2025, 3, 9, 6, tzinfo=UTC), datetime(2025, 3, 9, 8, tzinfo=UTC)
    )
    assert [b.start for b in spring] == ["2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00"]
    months = series(
        "America/New_York", "month", datetime(2025, 10, 15, tzinfo=UTC), datetime(2025, 11, 15, tzinfo=UTC)
    )
    assert months[0].endTime - months[0].startTime == 31 * 86_400_000
    assert months[1].start == "2025-11-01T00:00:00-04:00"
    assert months[1].endTime == ms(datetime(2025, 12, 1, 5, tzinfo=UTC))  # 30 days and an hour later


def test_series_and_summaries_stay_in_the_callers_mode(module_server, recorded) -> None:
    with GrpcClient(module_server.grpc_target) as c:
        test_mode = bearer(module_server.test_key)
        f = u.UsageFilter(
            userId=USER,
            startTime=ms(datetime(2025, 1, 1, tzinfo=UTC)),
            endTime=ms(datetime(2026, 1, 1, tzinfo=UTC)),
        )
        summary = c.unary(USAGE + "GetUsageSummary", u.GetUsageSummaryRequest(filter=f), test_mode)
        assert summary.totals.records == 0 and summary.totals.cost == "0"
        series = c.unary(
            USAGE + "GetUsageSeries", u.GetUsageSeriesRequest(filter=f, bucket="month"), test_mode
        )
        assert len(series.buckets) == 12 and all(b.totals.records == 0 for b in series.buckets)
        dash = [("authorization", f"Bearer {module_server.dash_key}"), ("x-scrawn-mode", "live")]
        live = c.unary(USAGE + "GetUsageSummary", u.GetUsageSummaryRequest(filter=f), dash)
        assert live.totals.records == len(recorded)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (u.GetUsageSeriesRequest(bucket="week", filter=u.UsageFilter(startTime=1, endTime=2)), "bucket"),
        (u.GetUsageSeriesRequest(bucket="", filter=u.UsageFilter(startTime=1, endTime=2)), "bucket"),
        (
            u.GetUsageSeriesRequest(
                bucket="day", timeZone="Mars/Olympus", filter=u.UsageFilter(startTime=1, endTime=2)
            ),
            "timeZone",
        ),
        (
            u.GetUsageSeriesRequest(
                bucket="day", timeZone="../../etc/passwd", filter=u.UsageFilter(startTime=1, endTime=2)
            ),
            "timeZone",
        ),
        (
            u.GetUsageSeriesRequest(
                bucket="day", timeZone="America", filter=u.UsageFilter(startTime=1, endTime=2)
            ),
            "timeZone",
        ),
        (u.GetUsageSeriesRequest(bucket="day"), "filter.startTime"),
        (u.GetUsageSeriesRequest(bucket="day", filter=u.UsageFilter(startTime=5)), "filter.endTime"),
        (
            u.GetUsageSeriesRequest(bucket="day", filter=u.UsageFilter(startTime=5, endTime=5)),
            "filter.endTime",
        ),
        (
            u.GetUsageSeriesRequest(
                bucket="hour", filter=u.UsageFilter(startTime=1, endTime=ms(datetime(2000, 1, 1, tzinfo=UTC)))
            ),
            "filter.endTime",
        ),
    ],
)
def test_bad_series_requests_name_the_field(usage, request_, field: str) -> None:
    with pytest.raises(RpcError) as err:
        usage("GetUsageSeries", request_)
    assert err.value.code == "invalid_argument" and f"{field}:" in err.value.message


def test_series_of_an_empty_range_is_all_zero_buckets(usage) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC) - timedelta(days=3650)
    f = u.UsageFilter(userId="nobody-at-all", startTime=ms(start), endTime=ms(start + timedelta(days=2)))
    res = usage("GetUsageSeries", u.GetUsageSeriesRequest(filter=f, bucket="day", timeZone="Europe/Berlin"))
    assert len(res.buckets) == 3 and all(
        b.totals.cost == "0" and b.totals.audioSeconds == "0" for b in res.buckets
    )
