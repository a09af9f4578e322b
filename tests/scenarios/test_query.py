"""QueryEvents (DESIGN §3.2): filters, nested groups, SUM/COUNT with grouping (exact decimal strings),
limit/offset/total, field validation, and int64 amounts rounded half-even beside the exact strings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from tests.clients import QUERY, STREAM, ConnectClient, RpcError, all_clients, bearer
from tests.conftest import ServerHandle, drop_pg_database, make_server, new_pg_database

BASE = int(time.time()) - 30 * 86400  # reported timestamps of the seed, in Unix seconds
BULK = 1050  # test-mode events for the limit/offset tests


def basic(
    user: str,
    key: str,
    ts: int,
    *,
    amount: int | None = None,
    tag: str | None = None,
    expr: str | None = None,
    metadata: str | None = None,
) -> ev.StreamEventRequest:
    usage = (
        ev.BasicUsage(amount=amount)
        if amount is not None
        else (ev.BasicUsage(tag=tag) if tag is not None else ev.BasicUsage(expr=expr))
    )
    if metadata is not None:
        usage.metadata = metadata
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, reportedTimestamp=ts, basicUsage=usage
    )


def ai_item(user: str, key: str, ts: int, **usage: Any) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.AI_TOKEN_USAGE,
        userId=user,
        idempotencyKey=key,
        reportedTimestamp=ts,
        aiTokenUsage=ev.AITokenUsage(**usage),
    )


# key -> (item, exact debit, int64 debit half-even)
SEED: dict[str, tuple[ev.StreamEventRequest, str, int]] = {
    "a1": (basic("alice", "a1", BASE + 0, amount=100, metadata='{"plan": "pro"}'), "100", 100),
    "a2": (basic("alice", "a2", BASE + 100, amount=250), "250", 250),
    "a3": (basic("alice", "a3", BASE + 200, expr="div(1, 3)"), "0.333333", 0),
    "b1": (basic("bob", "b1", BASE + 300, expr="div(2, 3)"), "0.666667", 1),
    "b2": (basic("bob", "b2", BASE + 400, amount=0), "0", 0),
    "c1": (basic("carol", "c1", BASE + 500, tag="HALF"), "2.5", 2),  # half-even: 2.5 -> 2
    "c2": (basic("carol", "c2", BASE + 600, expr="mul(tag(HALF), 3)"), "7.5", 8),  # 7.5 -> 8
    "c3": (basic("carol", "c3", BASE + 700, expr="3.5"), "3.5", 4),
    "c4": (basic("carol", "c4", BASE + 800, expr="0.5"), "0.5", 0),
    "d1": (basic("dave", "d1", BASE + 900, expr="div(2500001, 1000000)"), "2.500001", 3),
    "d2": (basic("dave", "d2", BASE + 1000, expr="1.5"), "1.5", 2),
    "f1": (basic("frac", "f1", BASE + 1100, expr="div(1, 6)"), "0.166667", 0),
    "f2": (basic("frac", "f2", BASE + 1200, expr="div(1, 6)"), "0.166667", 0),
    "e1": (
        ai_item(
            "erin",
            "e1",
            BASE + 1300,
            model="gpt-a",
            provider="openai",
            inputTokens=1000,
            outputTokens=200,
            inputCacheTokens=50,
            inputAmount=3,
            outputExpr="mul(outputTokens(), 0.0025)",
        ),
        "3.5",
        4,
    ),
    "e2": (
        ai_item(
            "erin",
            "e2",
            BASE + 1400,
            model="gpt-b",
            inputTokens=10,
            outputTokens=20,
            inputExpr="div(inputTokens(), 3)",
            outputAmount=1,
        ),
        "4.333333",
        4,
    ),
    "e3": (
        ai_item(
            "erin",
            "e3",
            BASE + 1500,
            model="gpt-a",
            inputTokens=500,
            outputTokens=100,
            inputAmount=1,
            outputAmount=1,
        ),
        "2",
        2,
    ),
}
USERS = {
    "alice": ["a1", "a2", "a3"],
    "bob": ["b1", "b2"],
    "carol": ["c1", "c2", "c3", "c4"],
    "dave": ["d1", "d2"],
    "erin": ["e1", "e2", "e3"],
    "frac": ["f1", "f2"],
}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    """One server per database, seeded once: the live mode holds SEED, the test mode BULK events."""
    data_dir = tmp_path_factory.mktemp(f"query_{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        if not postgres_ok:
            pytest.skip("PostgreSQL unavailable")
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        res = httpx.post(
            handle.base_url + "/api/v1/tags",
            json={"key": "HALF", "price": "2.5"},
            headers={"authorization": f"Bearer {handle.dash_key}"},
        )
        assert res.status_code == 201, res.text
        with ConnectClient(handle.base_url, binary=True) as c:
            handle.seeded_from_ms = int(time.time() * 1000) - 1  # type: ignore[attr-defined]
            done = c.stream(STREAM, [item for item, _, _ in SEED.values()], bearer(handle.live_key))
            assert (done.eventsProcessed, done.eventsFailed) == (len(SEED), 0), done.failures
            bulk = [
                ev.StreamEventRequest(
                    type=ev.BASIC_USAGE,
                    userId=f"bulk{i % 7}",
                    idempotencyKey=f"bulk-{i}",
                    basicUsage=ev.BasicUsage(amount=1),
                )
                for i in range(BULK)
            ]
            done = c.stream(STREAM, bulk, bearer(handle.test_key))
            assert (done.eventsProcessed, done.eventsFailed) == (BULK, 0)
            handle.seeded_to_ms = int(time.time() * 1000) + 1  # type: ignore[attr-defined]
        yield handle
    finally:
        handle.stop()
        if pg_name:
            drop_pg_database(pg_name)


@pytest.fixture(scope="module")
def qc(srv: ServerHandle) -> Iterator[ConnectClient]:
    with ConnectClient(srv.base_url, binary=True) as c:
        yield c


def cond(field: str, op: int, value: Any) -> q.FilterCondition:
    return q.FilterCondition(field=field, operator=op, value=str(value))


def group(
    *conditions: q.FilterCondition, logical: int = q.AND, groups: tuple[q.FilterGroup, ...] = ()
) -> q.FilterGroup:
    return q.FilterGroup(logical=logical, conditions=list(conditions), groups=list(groups))


def keys_of(res: q.QueryEventsResponse) -> list[str]:
    return sorted(r.idempotency_key for r in res.rows)


def run(qc: Any, srv: ServerHandle, key: str | None = None, **kw: Any) -> q.QueryEventsResponse:
    return qc.unary(QUERY, q.QueryEventsRequest(**kw), bearer(key or srv.live_key))  # type: ignore[no-any-return]


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------- filters


FILTERS: list[tuple[str, q.FilterGroup, list[str]]] = [
    ("userId EQ", group(cond("userId", q.EQ, "alice")), USERS["alice"]),
    ("user_id alias", group(cond("user_id", q.EQ, "bob")), USERS["bob"]),
    ("userId NEQ", group(cond("userId", q.NEQ, "alice")), [k for k in SEED if not k.startswith("a")]),
    ("userId GT", group(cond("userId", q.GT, "dave")), USERS["erin"] + USERS["frac"]),
    ("userId LTE", group(cond("userId", q.LTE, "bob")), USERS["alice"] + USERS["bob"]),
    ("debit GT 100", group(cond("debitAmount", q.GT, "100")), ["a2"]),
    ("debit GTE 100", group(cond("debitAmount", q.GTE, "100")), ["a1", "a2"]),
    ("debit LT 1", group(cond("debitAmount", q.LT, "1")), ["a3", "b1", "b2", "c4", "f1", "f2"]),
    ("debit LTE 0.5", group(cond("debitAmount", q.LTE, "0.5")), ["a3", "b2", "c4", "f1", "f2"]),
    ("debit EQ 0", group(cond("debitAmount", q.EQ, "0")), ["b2"]),
    ("debit EQ micro", group(cond("debitAmount", q.EQ, "0.333333")), ["a3"]),
    ("debit EQ 7.50", group(cond("debitAmount", q.EQ, "7.50")), ["c2"]),
    ("debit NEQ", group(cond("debitAmount", q.NEQ, "0.166667")), [k for k in SEED if k not in ("f1", "f2")]),
    (
        "debit between",
        group(cond("debitAmount", q.GT, "0.333333"), cond("debitAmount", q.LT, "1")),
        ["b1", "c4"],
    ),
    ("debit_amount alias", group(cond("debit_amount", q.EQ, "2.500001")), ["d1"]),
    (
        "reported range",
        group(cond("reportedTimestamp", q.GTE, BASE + 200), cond("reportedTimestamp", q.LT, BASE + 500)),
        ["a3", "b1", "b2"],
    ),
    (
        "reported ISO",
        group(
            cond("reportedTimestamp", q.GTE, iso(BASE + 200)),
            cond("reportedTimestamp", q.LT, iso(BASE + 500)),
        ),
        ["a3", "b1", "b2"],
    ),
    ("reported LTE first", group(cond("reportedTimestamp", q.LTE, BASE)), ["a1"]),
    ("reported EQ", group(cond("reportedTimestamp", q.EQ, BASE + 700)), ["c3"]),
    (
        "reported NEQ",
        group(cond("reportedTimestamp", q.NEQ, BASE + 700), cond("userId", q.EQ, "carol")),
        ["c1", "c2", "c4"],
    ),
    ("reported GT last", group(cond("reportedTimestamp", q.GT, BASE + 1400)), ["e3"]),
    ("model EQ", group(cond("model", q.EQ, "gpt-a")), ["e1", "e3"]),
    ("provider default", group(cond("provider", q.EQ, "unknown")), ["e2", "e3"]),
    ("tokens GTE", group(cond("inputTokens", q.GTE, 500)), ["e1", "e3"]),
    ("input debit", group(cond("inputDebitAmount", q.EQ, "3.333333")), ["e2"]),
    ("event type", group(cond("eventType", q.EQ, "AI_TOKEN_USAGE")), USERS["erin"]),
    (
        "nested AND(OR)",
        group(
            cond("userId", q.EQ, "alice"),
            groups=(group(cond("debitAmount", q.GT, "200"), cond("debitAmount", q.LT, "1"), logical=q.OR),),
        ),
        ["a2", "a3"],
    ),
    (
        "top OR with AND group",
        group(
            cond("userId", q.EQ, "bob"),
            logical=q.OR,
            groups=(group(cond("userId", q.EQ, "carol"), cond("debitAmount", q.GTE, "3.5")),),
        ),
        ["b1", "b2", "c2", "c3"],
    ),
    (
        "OR of groups",
        group(
            logical=q.OR,
            groups=(
                group(cond("userId", q.EQ, "frac")),
                group(
                    cond("userId", q.EQ, "dave"),
                    groups=(group(cond("debitAmount", q.GT, "2"), logical=q.OR),),
                ),
            ),
        ),
        ["d1", "f1", "f2"],
    ),
    (
        "unspecified logical is AND",
        q.FilterGroup(conditions=[cond("userId", q.EQ, "alice"), cond("debitAmount", q.LT, "1")]),
        ["a3"],
    ),
    ("empty OR group matches all", group(logical=q.OR), list(SEED)),
    ("no match", group(cond("userId", q.EQ, "nobody")), []),
]


@pytest.mark.parametrize(("where", "expected"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_filters(srv: ServerHandle, qc: ConnectClient, where: q.FilterGroup, expected: list[str]) -> None:
    res = run(qc, srv, where=where)
    assert keys_of(res) == sorted(expected)
    assert res.total == len(expected)


def test_ingested_timestamp_filters(srv: ServerHandle, qc: ConnectClient) -> None:
    start, end = srv.seeded_from_ms, srv.seeded_to_ms  # type: ignore[attr-defined]
    inside = group(cond("ingestedTimestamp", q.GTE, start), cond("ingestedTimestamp", q.LTE, end))
    assert run(qc, srv, where=inside).total == len(SEED)
    assert run(qc, srv, where=group(cond("ingestedTimestamp", q.LT, start))).total == 0
    assert run(qc, srv, where=group(cond("ingestedTimestamp", q.GT, end))).total == 0
    assert run(qc, srv, where=group(cond("ingestedTimestamp", q.GT, iso(start / 1000 - 3600)))).total == len(
        SEED
    )
    assert run(qc, srv, where=group(cond("ingestedTimestamp", q.LT, iso(start / 1000 - 3600)))).total == 0


def test_deep_but_allowed_nesting(srv: ServerHandle, qc: ConnectClient) -> None:
    where = group(cond("userId", q.EQ, "frac"))
    for _ in range(15):
        where = group(groups=(where,))
    assert keys_of(run(qc, srv, where=where)) == ["f1", "f2"]


def test_every_protocol_gives_the_same_answer(srv: ServerHandle) -> None:
    where = group(cond("userId", q.EQ, "carol"))
    answers = []
    for client in all_clients(srv):
        with client:
            res = run(client, srv, where=where)
            answers.append(
                [
                    (r.idempotency_key, r.debit_amount, r.debit_amount_exact, r.reported_timestamp)
                    for r in res.rows
                ]
                + [res.total]
            )
    assert all(a == answers[0] for a in answers)
    assert answers[0][-1] == 4


# --------------------------------------------------------------------------------------- event rows


@pytest.mark.parametrize("key", list(SEED))
def test_rows_carry_half_even_whole_units_and_exact_strings(
    srv: ServerHandle, qc: ConnectClient, key: str
) -> None:
    item, exact, whole = SEED[key]
    [row] = run(qc, srv, where=group(cond("idempotencyKey", q.EQ, key))).rows
    assert (row.debit_amount_exact, row.debit_amount) == (exact, whole)
    assert Decimal(row.debit_amount_exact) == Decimal(exact)
    assert row.user_id == item.userId
    assert row.mode == "live"
    assert row.reported_timestamp == datetime.fromtimestamp(item.reportedTimestamp, tz=UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
    ingested = datetime.fromisoformat(row.ingested_timestamp.replace("Z", "+00:00")).timestamp() * 1000
    assert srv.seeded_from_ms - 1000 <= ingested <= srv.seeded_to_ms + 1000  # type: ignore[attr-defined]
    assert len(row.event_id) == 36
    if item.type == ev.BASIC_USAGE:
        assert row.event_type == "BASIC_USAGE"
        assert row.basic_usage_type == "RAW"
        assert not row.HasField("model") and not row.HasField("input_tokens")
    else:
        assert row.event_type == "AI_TOKEN_USAGE"
        assert row.model == item.aiTokenUsage.model
        assert (row.input_tokens, row.output_tokens) == (
            item.aiTokenUsage.inputTokens,
            item.aiTokenUsage.outputTokens,
        )


def test_ai_component_amounts(srv: ServerHandle, qc: ConnectClient) -> None:
    rows = {r.idempotency_key: r for r in run(qc, srv, where=group(cond("userId", q.EQ, "erin"))).rows}
    e1, e2 = rows["e1"], rows["e2"]
    assert (e1.input_debit_amount_exact, e1.output_debit_amount_exact) == ("3", "0.5")
    assert (e1.input_debit_amount, e1.output_debit_amount) == (3, 0)  # 0.5 -> 0 half-even
    assert (e1.input_cache_tokens, e1.provider) == (50, "openai")
    # an absent cache debit prices that component at 0, never reusing the input debit
    assert (e1.input_cache_debit_amount_exact, e1.input_cache_debit_amount) == ("0", 0)
    assert (e2.input_debit_amount_exact, e2.input_debit_amount, e2.output_debit_amount_exact) == (
        "3.333333",
        3,
        "1",
    )
    assert e2.provider == "unknown"


def test_metadata_round_trips(srv: ServerHandle, qc: ConnectClient) -> None:
    [row] = run(qc, srv, where=group(cond("idempotencyKey", q.EQ, "a1"))).rows
    assert row.metadata == '{"plan": "pro"}'
    [row] = run(qc, srv, where=group(cond("idempotencyKey", q.EQ, "a2"))).rows
    assert not row.HasField("metadata")


# --------------------------------------------------------------------------------------- aggregation


def agg(
    qc: ConnectClient,
    srv: ServerHandle,
    kind: int,
    field: str = "",
    by: str | None = None,
    where: q.FilterGroup | None = None,
    key: str | None = None,
    **kw: Any,
) -> list[tuple[str | None, str]]:
    req: dict[str, Any] = {"aggregation": q.Aggregation(type=kind, field=field)} | kw
    if by is not None:
        req["group_by"] = q.GroupBy(field=by)
    if where is not None:
        req["where"] = where
    res = run(qc, srv, key, **req)
    assert not res.rows
    return [(r.group_value if r.HasField("group_value") else None, r.agg_value) for r in res.agg_rows]


def _sum(keys: list[str]) -> str:
    total = sum((Decimal(SEED[k][1]) for k in keys), Decimal(0))
    return format(total.normalize(), "f") if total else "0"


def test_count(srv: ServerHandle, qc: ConnectClient) -> None:
    assert agg(qc, srv, q.COUNT) == [(None, str(len(SEED)))]
    assert agg(qc, srv, q.COUNT, where=group(cond("userId", q.EQ, "carol"))) == [(None, "4")]
    assert agg(qc, srv, q.COUNT, where=group(cond("userId", q.EQ, "nobody"))) == [(None, "0")]
    assert agg(qc, srv, q.COUNT, by="userId") == [(u, str(len(k))) for u, k in sorted(USERS.items())]
    assert agg(qc, srv, q.COUNT, by="eventType") == [
        ("AI_TOKEN_USAGE", "3"),
        ("BASIC_USAGE", str(len(SEED) - 3)),
    ]


def test_sum_is_exact(srv: ServerHandle, qc: ConnectClient) -> None:
    # two prices of 1/6 each round to 0.166667; their sum is the sum of what was billed
    assert agg(qc, srv, q.SUM, "debitAmount", where=group(cond("userId", q.EQ, "frac"))) == [
        (None, "0.333334")
    ]
    by_user = agg(qc, srv, q.SUM, "debitAmount", by="userId")
    assert by_user == [(u, _sum(k)) for u, k in sorted(USERS.items())]
    assert dict(by_user) == {
        "alice": "350.333333",
        "bob": "0.666667",
        "carol": "14",
        "dave": "4.000001",
        "erin": "9.833333",
        "frac": "0.333334",
    }
    assert agg(qc, srv, q.SUM, "debitAmount") == [(None, _sum(list(SEED)))] == [(None, "379.166668")]
    assert agg(qc, srv, q.SUM, "debit_amount", where=group(cond("userId", q.EQ, "nobody"))) == [(None, "0")]


def test_sum_of_tokens_and_components(srv: ServerHandle, qc: ConnectClient) -> None:
    ai_only = group(cond("eventType", q.EQ, "AI_TOKEN_USAGE"))
    assert agg(qc, srv, q.SUM, "inputTokens", by="model", where=ai_only) == [
        ("gpt-a", "1500"),
        ("gpt-b", "10"),
    ]
    assert agg(qc, srv, q.SUM, "outputDebitAmount", by="model", where=ai_only) == [
        ("gpt-a", "1.5"),
        ("gpt-b", "1"),
    ]
    assert agg(qc, srv, q.SUM, "inputDebitAmount", where=ai_only) == [(None, "7.333333")]


def test_group_by_a_column_with_nulls_is_the_same_on_every_database(
    srv: ServerHandle, qc: ConnectClient
) -> None:
    rows = agg(qc, srv, q.COUNT, by="model")
    assert sorted(rows, key=lambda r: (r[0] is not None, r[0] or "")) == [
        (None, str(len(SEED) - 3)),
        ("gpt-a", "2"),
        ("gpt-b", "1"),
    ]
    assert rows == [(None, str(len(SEED) - 3)), ("gpt-a", "2"), ("gpt-b", "1")], "NULL group comes first"


def test_grouped_aggregation_pages_over_groups(srv: ServerHandle, qc: ConnectClient) -> None:
    assert agg(qc, srv, q.COUNT, by="userId", limit=2, offset=1) == [("bob", "2"), ("carol", "4")]
    res = run(qc, srv, aggregation=q.Aggregation(type=q.COUNT), group_by=q.GroupBy(field="userId"))
    assert res.total == len(SEED)  # total counts the matching events


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"aggregation": q.Aggregation(type=q.SUM, field="userId")}, "aggregation.field"),
        ({"aggregation": q.Aggregation(type=q.SUM, field="price")}, "aggregation.field"),
        ({"aggregation": q.Aggregation(type=q.SUM, field="")}, "aggregation.field"),
        ({"aggregation": q.Aggregation(type=7, field="debitAmount")}, "aggregation.type"),
        (
            {"aggregation": q.Aggregation(type=q.COUNT), "group_by": q.GroupBy(field="users")},
            "group_by.field",
        ),
        (
            {
                "aggregation": q.Aggregation(type=q.COUNT),
                "group_by": q.GroupBy(field="user_id; DROP TABLE events"),
            },
            "group_by.field",
        ),
    ],
)
def test_bad_aggregations_name_the_field(
    srv: ServerHandle, qc: ConnectClient, request_kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(RpcError) as err:
        run(qc, srv, **request_kw)
    assert err.value.code == "invalid_argument"
    assert f"{field}:" in err.value.message, err.value.message


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("where", "field", "word"),
    [
        (group(cond("nope", q.EQ, "x")), "where.conditions[0].field", "'nope'"),
        (group(cond("userId", q.EQ, "x"), cond("debit", q.EQ, "1")), "where.conditions[1].field", "'debit'"),
        (
            group(groups=(group(), group(cond("userId", q.EQ, "x"), cond("secret", q.EQ, "1")))),
            "where.groups[1].conditions[1].field",
            "'secret'",
        ),
        (group(cond("project_id", q.EQ, "x")), "where.conditions[0].field", "'project_id'"),
        (group(cond("mode", q.EQ, "test")), "where.conditions[0].field", "'mode'"),
        (group(cond("", q.EQ, "x")), "where.conditions[0].field", "unknown field"),
        (group(cond("debitAmount", q.EQ, "abc")), "where.conditions[0].value", "'abc'"),
        (group(cond("debitAmount", q.EQ, "NaN")), "where.conditions[0].value", "'NaN'"),
        (group(cond("debitAmount", q.GT, "Infinity")), "where.conditions[0].value", "'Infinity'"),
        (group(cond("inputTokens", q.EQ, "1.5")), "where.conditions[0].value", "'1.5'"),
        (group(cond("reportedTimestamp", q.GT, "yesterday")), "where.conditions[0].value", "'yesterday'"),
        (
            group(q.FilterCondition(field="userId", operator=q.OPERATOR_UNSPECIFIED, value="x")),
            "where.conditions[0].operator",
            "EQ",
        ),
        (
            group(q.FilterCondition(field="userId", operator=42, value="x")),
            "where.conditions[0].operator",
            "EQ",
        ),
        (q.FilterGroup(logical=9, conditions=[cond("userId", q.EQ, "x")]), "where.logical", "AND or OR"),
    ],
)
def test_bad_filters_name_the_field(
    srv: ServerHandle, qc: ConnectClient, where: q.FilterGroup, field: str, word: str
) -> None:
    for client in (qc,):
        with pytest.raises(RpcError) as err:
            run(client, srv, where=where)
        assert err.value.code == "invalid_argument"
        assert err.value.message.startswith(f"Query validation failed: {field}:"), err.value.message
        assert word in err.value.message


def test_too_deep_or_too_many_conditions(srv: ServerHandle, qc: ConnectClient) -> None:
    where = group(cond("userId", q.EQ, "frac"))
    for _ in range(17):
        where = group(groups=(where,))
    with pytest.raises(RpcError) as err:
        run(qc, srv, where=where)
    assert err.value.code == "invalid_argument" and "deep" in err.value.message
    many = group(*[cond("userId", q.EQ, f"u{i}") for i in range(201)], logical=q.OR)
    with pytest.raises(RpcError) as err:
        run(qc, srv, where=many)
    assert err.value.code == "invalid_argument" and "conditions" in err.value.message
    assert (
        run(
            qc,
            srv,
            where=group(
                *[cond("userId", q.EQ, f"u{i}") for i in range(199)],
                cond("userId", q.EQ, "bob"),
                logical=q.OR,
            ),
        ).total
        == 2
    )


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_ten_thousand_deep_filter_is_refused_cleanly(srv: ServerHandle) -> None:
    """A FilterGroup nested 10,000 deep (raw protobuf: no client library builds one) is INVALID_ARGUMENT,
    not INTERNAL, not a crash."""
    inner = b""
    for _ in range(10_000):
        inner = b"\x1a" + _varint(len(inner)) + inner  # FilterGroup.groups = 3
    raw = b"\x0a" + _varint(len(inner)) + inner  # QueryEventsRequest.where = 1
    res = httpx.post(
        srv.base_url + QUERY,
        content=raw,
        headers={"content-type": "application/proto", "authorization": f"Bearer {srv.live_key}"},
    )
    assert res.status_code == 400 and res.json()["code"] == "invalid_argument", res.text
    with grpc.insecure_channel(srv.grpc_target) as channel:
        call = channel.unary_unary(
            QUERY, request_serializer=lambda b: b, response_deserializer=q.QueryEventsResponse.FromString
        )
        with pytest.raises(grpc.RpcError) as err:
            call(raw, metadata=bearer(srv.live_key), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert httpx.get(srv.base_url + "/healthz").status_code == 200
    assert "Traceback" not in srv.log()


# ----------------------------------------------------------------------------------- limit and offset


def test_limit_default_max_and_over(srv: ServerHandle, qc: ConnectClient) -> None:
    res = run(qc, srv, srv.test_key)
    assert (len(res.rows), res.total) == (100, BULK)  # 0 means the default, 100
    res = run(qc, srv, srv.test_key, limit=1000)
    assert (len(res.rows), res.total) == (1000, BULK)
    res = run(qc, srv, srv.test_key, limit=7)
    assert (len(res.rows), res.total) == (7, BULK)
    for bad in (1001, 5000, 2**31 - 1, -1):
        with pytest.raises(RpcError) as err:
            run(qc, srv, srv.test_key, limit=bad)
        assert err.value.code == "invalid_argument" and "limit:" in err.value.message
    with pytest.raises(RpcError) as err:
        run(qc, srv, srv.test_key, offset=-1)
    assert err.value.code == "invalid_argument" and "offset:" in err.value.message


def test_offset_pages_without_gaps_or_overlaps(srv: ServerHandle, qc: ConnectClient) -> None:
    seen: list[str] = []
    for offset in (0, 400, 800):
        res = run(qc, srv, srv.test_key, limit=400, offset=offset)
        assert res.total == BULK
        seen += [r.event_id for r in res.rows]
    assert len(seen) == BULK and len(set(seen)) == BULK
    res = run(qc, srv, srv.test_key, limit=1000, offset=1000)
    assert (len(res.rows), res.total) == (BULK - 1000, BULK)
    res = run(qc, srv, srv.test_key, limit=10, offset=BULK + 5)
    assert (len(res.rows), res.total) == (0, BULK)
    # filtered totals count the matches, not the page
    res = run(qc, srv, srv.test_key, where=group(cond("userId", q.EQ, "bulk0")), limit=3, offset=2)
    assert (len(res.rows), res.total) == (3, len(range(0, BULK, 7)))


def test_query_is_scoped_to_the_mode(srv: ServerHandle, qc: ConnectClient) -> None:
    assert run(qc, srv, srv.test_key, where=group(cond("userId", q.EQ, "alice"))).total == 0
    assert run(qc, srv, srv.live_key, where=group(cond("userId", q.EQ, "bulk0"))).total == 0
    assert run(qc, srv, srv.dash_key).total == len(SEED)
    test_dash = qc.unary(QUERY, q.QueryEventsRequest(), [*bearer(srv.dash_key), ("x-scrawn-mode", "test")])
    assert test_dash.total == BULK
    assert agg(qc, srv, q.SUM, "debitAmount", key=srv.test_key) == [(None, str(BULK))]
