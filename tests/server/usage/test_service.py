"""The usage domain's rules (``usage/records.py``, ``queries.py``, ``series.py``) on both databases: a record
is priced as CalculateCost prices it and stored once per key; customer records belong to a confirmed
reservation of the same user; pages, filters, summaries and series equal sums taken independently."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn.errors import AlreadyExistsError, NotFoundError, ValidationError
from scrawn.server.usage import queries, records, series
from scrawn.server.usage.types import Filter
from scrawn.server.wallets import service as wallets
from tests.server.fresh import Fresh

D = Decimal
MODE = "live"
BERLIN = ZoneInfo("Europe/Berlin")
# Around Berlin's 2025 spring change (03-30 01:00 UTC): that local day lasts 23 hours.
SPRING = int(datetime(2025, 3, 29, 12, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000


def request(key: str, at: int, *, model: str = "gpt-4o", user: str = "u", tokens: int = 1000) -> Any:
    return u.RecordUsageRequest(
        userId=user,
        context="system",
        model=model,
        inputTokens=tokens,
        outputTokens=tokens // 2,
        idempotencyKey=key,
        timestamp=at,
    )


async def record_all(fresh: Fresh, reqs: Iterable[Any]) -> list[Any]:
    rows = []
    async with fresh.db.write() as conn:
        for req in reqs:
            row, duplicate = await records.record(conn, fresh.project_id, MODE, records.check_record(req))
            assert not duplicate
            rows.append(row)
    return rows


async def test_a_record_costs_what_calculate_cost_says_and_is_stored_once(fresh: Fresh) -> None:
    req = request("k", SPRING, tokens=1234)
    async with fresh.db.write() as conn:
        quoted = await records.calculate(conn, fresh.project_id, records.check_call(req))
        row, duplicate = await records.record(conn, fresh.project_id, MODE, records.check_record(req))
        again, retried = await records.record(conn, fresh.project_id, MODE, records.check_record(req))
    assert not duplicate and retried and again.id == row.id
    assert records.cost_of(row) == quoted and row.cost == quoted.total > 0
    assert (row.input_tokens, row.output_tokens, row.occurred_at, row.context) == (
        1234,
        617,
        SPRING,
        "system",
    )
    with pytest.raises(AlreadyExistsError) as reused:
        async with fresh.db.write() as conn:
            await records.record(conn, fresh.project_id, MODE, records.check_record(request("k", SPRING)))
    assert reused.value.field == "idempotencyKey"


async def test_customer_usage_belongs_to_a_confirmed_reservation_of_its_user(fresh: Fresh) -> None:
    async with fresh.db.write() as conn:
        await wallets.credit(
            conn,
            fresh.project_id,
            MODE,
            user_id="u",
            amount=D(100),
            kind="grant",
            key="c",
            description=None,
            expires_at=None,
        )
        held = await wallets.create_reservation(
            conn, fresh.project_id, MODE, user_id="u", amount=D(10), ttl=60, key="r", description=None
        )
        _, transaction_id, _ = await wallets.confirm_reservation(conn, fresh.project_id, MODE, held.id, D(4))

    def customer(user: str, key: str) -> records.RecordInput:
        req = request(key, SPRING, user=user)
        req.context, req.transactionId = "customer", transaction_id
        return records.check_record(req)

    async with fresh.db.write() as conn:
        row, _ = await records.record(conn, fresh.project_id, MODE, customer("u", "mine"))
    assert (row.transaction_id, row.reservation_id) == (transaction_id, held.id)
    with pytest.raises(NotFoundError) as other:
        async with fresh.db.write() as conn:
            await records.record(conn, fresh.project_id, MODE, customer("v", "theirs"))
    assert other.value.field == "transactionId"
    with pytest.raises(NotFoundError):
        async with fresh.db.write() as conn:
            await records.record(conn, fresh.project_id, "test", customer("u", "other-mode"))


async def test_pages_and_filters_stay_in_their_project_and_mode(fresh: Fresh) -> None:
    await record_all(
        fresh,
        [request(f"k{i}", SPRING + i * HOUR, model="gpt-4o-mini" if i % 2 else "gpt-4o") for i in range(5)]
        + [request("v", SPRING, user="v")],
    )
    async with fresh.db.write() as conn:  # the same key in another mode is another record
        await records.record(conn, fresh.project_id, "test", records.check_record(request("k0", SPRING)))

    async def keys(f: Filter, limit: int = 0) -> list[str]:
        seen, token = [], ""
        async with fresh.db.read() as conn:
            while True:
                rows, token = await queries.list_records(conn, fresh.project_id, MODE, f, limit, token)
                seen += [r.idempotency_key for r in rows]
                if not token:
                    return seen

    assert await keys(Filter(user_id="u"), limit=2) == ["k4", "k3", "k2", "k1", "k0"]  # newest first
    assert await keys(Filter(model="gpt-4o-mini")) == ["k3", "k1"]
    assert await keys(Filter(start=SPRING + HOUR, end=SPRING + 3 * HOUR)) == ["k2", "k1"]  # [start, end)
    assert sorted(await keys(Filter())) == ["k0", "k1", "k2", "k3", "k4", "v"]
    with pytest.raises(ValidationError) as bad:
        async with fresh.db.read() as conn:
            await queries.list_records(conn, fresh.project_id, MODE, Filter(), 0, "nonsense")
    assert bad.value.field == "pageToken"


async def test_summary_equals_sums_taken_independently(fresh: Fresh) -> None:
    rows = await record_all(
        fresh,
        [
            request(f"k{i}", SPRING + i, model="gpt-4o-mini" if i % 3 else "gpt-4o", tokens=100 + i)
            for i in range(9)
        ],
    )
    async with fresh.db.read() as conn:
        got = await queries.summary(conn, fresh.project_id, MODE, Filter())
        empty = await queries.summary(conn, fresh.project_id, MODE, Filter(user_id="nobody"))
    assert got.totals.records == 9
    assert got.totals.cost == sum((r.cost for r in rows), D(0))
    assert got.totals.input_tokens == sum(r.input_tokens for r in rows)
    by_model: dict[str, Decimal] = {}
    for r in rows:
        by_model[r.model] = by_model.get(r.model, D(0)) + r.cost
    assert [(m, t.cost) for m, t in got.by_model] == sorted(by_model.items(), key=lambda kv: -kv[1])
    assert [(c, t.records) for c, t in got.by_context] == [("system", 9)]
    assert (empty.totals.cost, empty.totals.records, empty.by_model) == (0, 0, [])


async def test_a_daily_series_follows_the_wall_clock_across_a_dst_change(fresh: Fresh) -> None:
    times = [SPRING + h * HOUR for h in range(0, 48, 5)]  # 2025-03-29 12:00 UTC onwards
    rows = await record_all(fresh, [request(f"k{i}", at) for i, at in enumerate(times)])
    start = int(datetime(2025, 3, 29, tzinfo=BERLIN).timestamp() * 1000)
    end = int(datetime(2025, 4, 1, tzinfo=BERLIN).timestamp() * 1000)
    async with fresh.db.read() as conn:
        days = await series.series(conn, fresh.project_id, MODE, Filter(start=start, end=end), BERLIN, "day")
    assert [b.label[:10] for b in days] == ["2025-03-29", "2025-03-30", "2025-03-31"]
    assert [(b.end_ms - b.start_ms) // HOUR for b in days] == [24, 23, 24]  # the short day is short
    for b in days:
        inside = [r for r in rows if b.start_ms <= r.occurred_at < b.end_ms]
        assert (b.totals.records, b.totals.cost) == (len(inside), sum((r.cost for r in inside), D(0)))
    assert sum(b.totals.records for b in days) == len(rows)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"context": "other"}, "context"),
        ({"context": "customer", "transactionId": ""}, "transactionId"),
        ({"transactionId": "00000000-0000-0000-0000-000000000000"}, "transactionId"),  # system stands alone
        ({"idempotencyKey": " "}, "idempotencyKey"),
        ({"model": ""}, "model"),
        ({"inputTokens": 10, "cachedTokens": 11}, "cachedTokens"),
        ({"inputTokens": 0, "outputTokens": 0}, "inputTokens"),
        ({"audioSeconds": "1.5"}, "audioSeconds"),  # text usage has no audio
        ({"timestamp": -1}, "timestamp"),
    ],
)
def test_bad_records_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    req = request("k", 0)
    for name, value in change.items():
        setattr(req, name, value)
    with pytest.raises(ValidationError) as err:
        records.check_record(req)
    assert err.value.field == field


def test_bad_filters_name_their_field() -> None:
    with pytest.raises(ValidationError) as backwards:
        queries.check_filter(u.UsageFilter(startTime=5, endTime=5))
    with pytest.raises(ValidationError) as unbounded:
        queries.check_filter(u.UsageFilter(startTime=5), require_range=True)
    assert (backwards.value.field, unbounded.value.field) == ("filter.endTime", "filter.endTime")
    assert queries.check_filter(None) == Filter()
