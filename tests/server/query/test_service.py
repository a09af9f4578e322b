"""``query/service.py`` (QueryEvents) on both databases, over events stored by the events domain: rows newest
first within the caller's project and mode, exact and half-even amounts, nested filters, SUM and COUNT per
group equal to sums taken independently, voided events left out unless asked, and every bad request
refused naming the field."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from scrawn.errors import ValidationError
from scrawn.server.events import intake, void_service
from scrawn.server.events.batch import store_batch
from scrawn.server.events.price import load_pricing, price_event
from scrawn.server.events.types import Stored
from scrawn.server.query import service
from tests.server.fresh import Fresh

D = Decimal
MODE = "live"
DAY = 86_400
REPORTED = 1_740_000_000  # Unix seconds (2025-02-19T21:20:00Z)

# (user, debit expression in minor units, reported at): stored one by one, in this order
EVENTS = [
    ("a", "2.5", REPORTED),
    ("B", "3.5", REPORTED + DAY),
    ("a", "10", REPORTED + 2 * DAY),
    ("c", "0.25", REPORTED),
]


async def ingest(fresh: Fresh, user: str, expr: str, reported: int, mode: str = MODE) -> str:
    """Store one event as ingest does (parse, price, store), in its own transaction: its own ingest time."""
    req = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId=user,
        reportedTimestamp=reported,
        idempotencyKey=f"{mode}-{user}-{expr}-{reported}",
        basicUsage=ev.BasicUsage(expr=expr),
    )
    inp = intake.from_register(req)
    async with fresh.db.write() as conn:
        priced = price_event(fresh.project_id, mode, inp, await load_pricing(conn, fresh.project_id, [inp]))
        (outcome,) = await store_batch(conn, [priced])
    assert isinstance(outcome, Stored)
    await asyncio.sleep(0.003)  # the next event is ingested at a later millisecond
    return outcome.event_id


async def seeded(fresh: Fresh) -> list[str]:
    ids = [await ingest(fresh, user, expr, at) for user, expr, at in EVENTS]
    await ingest(fresh, "a", "99", REPORTED, mode="test")  # another mode: never seen from live
    return ids


async def query(fresh: Fresh, **fields: object) -> q.QueryEventsResponse:
    async with fresh.db.read() as conn:
        return await service.query_events(conn, fresh.project_id, MODE, q.QueryEventsRequest(**fields))


def cond(field: str, op: int, value: str) -> q.FilterCondition:
    return q.FilterCondition(field=field, operator=op, value=value)


async def test_rows_are_newest_first_with_exact_and_half_even_amounts(fresh: Fresh) -> None:
    ids = await seeded(fresh)
    got = await query(fresh)
    assert got.total == 4
    assert [r.event_id for r in got.rows] == ids[::-1]
    by_id = {r.event_id: r for r in got.rows}
    first, second = by_id[ids[0]], by_id[ids[1]]
    assert (first.debit_amount, first.debit_amount_exact) == (2, "2.5")  # 2.5 rounds to even: 2
    assert (second.debit_amount, second.debit_amount_exact) == (4, "3.5")
    assert (first.user_id, first.mode, first.event_type) == ("a", MODE, "BASIC_USAGE")
    assert first.reported_timestamp.startswith("2025-02-19T21:20:00")
    page = await query(fresh, limit=2, offset=1)
    assert page.total == 4 and [r.event_id for r in page.rows] == ids[::-1][1:3]


async def test_filters_nest_and_compare_typed_values(fresh: Fresh) -> None:
    ids = await seeded(fresh)
    where = q.FilterGroup(
        logical=q.OR,
        conditions=[cond("userId", q.EQ, "c")],
        groups=[
            q.FilterGroup(
                conditions=[cond("user_id", q.EQ, "a"), cond("debitAmount", q.GT, "2.5")]  # snake case too
            )
        ],
    )
    got = await query(fresh, where=where)
    assert sorted(r.event_id for r in got.rows) == sorted([ids[2], ids[3]]) and got.total == 2
    since = q.FilterGroup(conditions=[cond("reportedTimestamp", q.GTE, "2025-02-20T21:20:00Z")])
    assert {r.event_id for r in (await query(fresh, where=since)).rows} == {ids[1], ids[2]}  # ISO or seconds
    exact = q.FilterGroup(conditions=[cond("debitAmount", q.LTE, "0.25")])
    assert [r.event_id for r in (await query(fresh, where=exact)).rows] == [ids[3]]


async def test_sums_and_counts_per_group_equal_independent_sums(fresh: Fresh) -> None:
    await seeded(fresh)
    sums = await query(
        fresh, aggregation=q.Aggregation(type=q.SUM, field="debitAmount"), group_by=q.GroupBy(field="userId")
    )
    expected: dict[str, Decimal] = {}
    for user, expr, _ in EVENTS:
        expected[user] = expected.get(user, D(0)) + D(expr)
    # Groups in code-point order on both databases, whatever PostgreSQL's collation: "B" before "a".
    assert [(r.group_value, D(r.agg_value)) for r in sums.agg_rows] == sorted(expected.items())
    counts = await query(fresh, aggregation=q.Aggregation(type=q.COUNT))
    assert [r.agg_value for r in counts.agg_rows] == ["4"]
    total = await query(fresh, aggregation=q.Aggregation(type=q.SUM, field="debitAmount"))
    assert D(total.agg_rows[0].agg_value) == sum(expected.values())


async def test_voided_events_are_left_out_unless_asked_for(fresh: Fresh) -> None:
    ids = await seeded(fresh)
    async with fresh.db.write() as conn:
        target = void_service.check_target(ids[2], "")
        await void_service.void_event(conn, fresh.project_id, MODE, target, "a mistake", "test")
    kept = await query(fresh)
    assert ids[2] not in {r.event_id for r in kept.rows} and kept.total == 3
    every = await query(fresh, include_voided=True)
    voided = next(r for r in every.rows if r.event_id == ids[2])
    assert every.total == 4 and voided.void_reason == "a mistake" and voided.voided_timestamp
    summed = await query(fresh, aggregation=q.Aggregation(type=q.SUM, field="debitAmount"))
    assert D(summed.agg_rows[0].agg_value) == D("6.25")  # 2.5 + 3.5 + 0.25, the voided 10 left out


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"where": q.FilterGroup(conditions=[cond("password", q.EQ, "x")])}, "where.conditions[0].field"),
        ({"where": q.FilterGroup(conditions=[cond("userId", 0, "x")])}, "where.conditions[0].operator"),
        (
            {"where": q.FilterGroup(conditions=[cond("debitAmount", q.EQ, "lots")])},
            "where.conditions[0].value",
        ),
        (
            {
                "where": q.FilterGroup(
                    groups=[q.FilterGroup(logical=7, conditions=[cond("userId", q.EQ, "a")])]
                )
            },
            "where.groups[0].logical",
        ),
        ({"aggregation": q.Aggregation(type=q.SUM, field="userId")}, "aggregation.field"),
        ({"aggregation": q.Aggregation(type=q.COUNT), "group_by": q.GroupBy(field="x")}, "group_by.field"),
    ],
)
async def test_bad_requests_name_the_field(fresh: Fresh, fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        await query(fresh, **fields)
    assert err.value.field == field


async def test_filters_nested_too_deep_are_refused_at_their_path(fresh: Fresh) -> None:
    group = q.FilterGroup()
    for _ in range(17):
        group = q.FilterGroup(groups=[group])
    with pytest.raises(ValidationError) as err:
        await query(fresh, where=group)
    assert err.value.field is not None and err.value.field.startswith("where.groups[0]")
    assert "16" in err.value.message
