"""Exact sums at any size (docs/money.md#exact-sums), on a real server, SQLite and PostgreSQL: QueryEvents
SUM, usage summaries and series whose micro-unit totals pass 2^63 answer the exact decimal (SQLite's SUM()
would fail with "integer overflow"); balances stay exact up to their limit, and a genuine limit is
OUT_OF_RANGE naming the field, never UNAVAILABLE."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet
from tests.clients import (
    QUERY,
    REGISTER,
    STREAM,
    USAGE,
    VOID,
    WALLET,
    ConnectClient,
    GrpcClient,
    RpcError,
    all_clients,
    bearer,
)
from tests.conftest import ServerHandle

MAX_MICROS = 2**63 - 1
BIGGEST = Decimal(MAX_MICROS).scaleb(-6)  # 9223372036854.775807 minor units: the most one amount holds
TAG = "BIGGEST_PRICE"


@pytest.fixture(scope="module")
def srv(module_server: ServerHandle) -> ServerHandle:
    headers = {"authorization": f"Bearer {module_server.dash_key}"}
    with httpx.Client(base_url=module_server.base_url, headers=headers, timeout=30) as api:
        res = api.post("/api/v1/tags", json={"key": TAG, "price": str(BIGGEST)})
        assert res.status_code in (200, 201), res.text
    return module_server


def users(n: int) -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"huge-{run}-{i}" for i in range(n)]


def of_users(names: list[str]) -> q.FilterGroup:
    return q.FilterGroup(
        logical=q.OR, conditions=[q.FilterCondition(field="userId", operator=q.EQ, value=n) for n in names]
    )


def charge_biggest(c: Any, key: str, user_id: str) -> Any:
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId=user_id,
        basicUsage=ev.BasicUsage(tag=TAG),
        idempotencyKey=uuid.uuid4().hex,
    )
    return c.unary(REGISTER, request, bearer(key))


def summed(c: Any, key: str, where: q.FilterGroup, field: str, **extra: Any) -> list[tuple[str, str]]:
    request = q.QueryEventsRequest(where=where, aggregation=q.Aggregation(type=q.SUM, field=field), **extra)
    rows = c.unary(QUERY, request, bearer(key)).agg_rows
    return [(r.group_value, r.agg_value) for r in rows]


def test_query_sum_past_2_63_micro_units_is_exact(srv: ServerHandle) -> None:
    names = users(3)
    with ConnectClient(srv.base_url) as c:
        ids = [charge_biggest(c, srv.live_key, n).eventId for n in names]
        # Each user's balance is at its floor now: one more such debit is a genuine limit, named.
        with pytest.raises(RpcError) as e:
            charge_biggest(c, srv.live_key, names[0])
        assert e.value.code == "out_of_range" and e.value.message.startswith("debit: "), e.value
    three, two = str(3 * BIGGEST), str(2 * BIGGEST)
    assert three == "27670116110564.327421"  # 3 × (2^63 − 1) micro-units: past the 64-bit range
    for client in all_clients(srv):
        with client:
            assert summed(client, srv.live_key, of_users(names), "debitAmount") == [("", three)]
            assert summed(client, srv.dash_key, of_users(names), "debit_amount") == [("", three)]
            grouped = q.GroupBy(field="eventType")
            assert summed(client, srv.live_key, of_users(names), "debitAmount", group_by=grouped) == [
                ("BASIC_USAGE", three)
            ]
            by_user = summed(
                client, srv.live_key, of_users(names), "debitAmount", group_by=q.GroupBy(field="userId")
            )
            assert by_user == [(n, str(BIGGEST)) for n in sorted(names)]

    with ConnectClient(srv.base_url) as c:
        void = ev.VoidEventRequest(eventId=ids[0], reason="too big to be true")
        assert c.unary(VOID, void, bearer(srv.live_key)).amount == str(BIGGEST)
        assert summed(c, srv.live_key, of_users(names), "debitAmount") == [("", two)]
        assert summed(c, srv.live_key, of_users(names), "debitAmount", include_voided=True) == [("", three)]
        balance = c.unary(
            WALLET + "GetBalance", wallet.GetBalanceRequest(userId=names[0]), bearer(srv.live_key)
        )
        assert balance.balance == "0"
        balance = c.unary(
            WALLET + "GetBalance", wallet.GetBalanceRequest(userId=names[1]), bearer(srv.live_key)
        )
        assert balance.balance == f"-{BIGGEST}"


def test_component_sums_past_2_63_are_exact(srv: ServerHandle) -> None:
    names = users(4)
    items = [
        ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId=n,
            idempotencyKey=uuid.uuid4().hex,
            aiTokenUsage=ev.AITokenUsage(
                model="house-model", inputTokens=2_000_000_000, outputTokens=7, inputTag=TAG, outputAmount=0
            ),
        )
        for n in names
    ]
    with GrpcClient(srv.grpc_target) as c:
        assert c.stream(STREAM, items, bearer(srv.test_key)).eventsFailed == 0
        assert summed(c, srv.test_key, of_users(names), "inputDebitAmount") == [("", str(4 * BIGGEST))]
        assert summed(c, srv.test_key, of_users(names), "debitAmount") == [("", str(4 * BIGGEST))]
        assert summed(c, srv.test_key, of_users(names), "inputTokens") == [("", "8000000000")]  # past int32
        assert summed(c, srv.test_key, of_users(names), "outputDebitAmount") == [("", "0")]
        # The live mode never sees them.
        assert summed(c, srv.live_key, of_users(names), "inputDebitAmount") == [("", "0")]


def test_usage_summary_and_series_past_2_63_are_exact(srv: ServerHandle) -> None:
    model = f"huge-model-{uuid.uuid4().hex[:6]}"
    headers = {"authorization": f"Bearer {srv.dash_key}"}
    # The most a rate may be (a million US dollars per million tokens) times 9e10 tokens: 9e12 cents a
    # record, near the most one amount holds.
    with httpx.Client(base_url=srv.base_url, headers=headers, timeout=30) as api:
        res = api.post(
            "/api/v1/model-prices",
            json={"model": model, "inputPerMillion": "1000000", "effectiveFrom": "2020-01-01T00:00:00Z"},
        )
        assert res.status_code == 201, res.text
    now = int(time.time() * 1000)
    with GrpcClient(srv.grpc_target) as c:

        def call(method: str, request: Any) -> Any:
            return c.unary(USAGE + method, request, bearer(srv.live_key))

        for i in range(3):
            record = u.RecordUsageRequest(
                context="system",
                model=model,
                inputTokens=90_000_000_000,
                idempotencyKey=f"{model}-{i}",
                timestamp=now - i,
            )
            assert call("RecordUsage", record).record.cost.total == "9000000000000"
        summary = call("GetUsageSummary", u.GetUsageSummaryRequest(filter=u.UsageFilter(model=model)))
        assert (summary.totals.cost, summary.totals.records) == ("27000000000000", 3)
        assert summary.totals.inputTokens == 270_000_000_000
        assert [(g.key, g.totals.cost) for g in summary.byModel] == [(model, "27000000000000")]
        assert [(g.key, g.totals.cost) for g in summary.byContext] == [("system", "27000000000000")]
        series = call(
            "GetUsageSeries",
            u.GetUsageSeriesRequest(
                filter=u.UsageFilter(model=model, startTime=now - 3_600_000, endTime=now + 3_600_000),
                bucket="hour",
            ),
        )
        assert sum(Decimal(b.totals.cost) for b in series.buckets) == Decimal("27000000000000")
        assert max(Decimal(b.totals.cost) for b in series.buckets) >= Decimal("18000000000000")


def test_a_credit_past_the_balance_range_is_out_of_range(srv: ServerHandle) -> None:
    [name] = users(1)
    with ConnectClient(srv.base_url) as c:

        def credit(amount: Decimal, key: str) -> Any:
            request = wallet.CreditRequest(userId=name, amount=str(amount), idempotencyKey=key)
            return c.unary(WALLET + "Credit", request, bearer(srv.live_key))

        credit(BIGGEST, f"{name}-1")
        with pytest.raises(RpcError) as e:
            credit(Decimal("0.000001"), f"{name}-2")
        assert e.value.code == "out_of_range" and e.value.message.startswith("amount: "), e.value
        balance = c.unary(WALLET + "GetBalance", wallet.GetBalanceRequest(userId=name), bearer(srv.live_key))
        assert balance.balance == str(BIGGEST)  # nothing changed
        # Usage still records against it, and a void credits it back exactly to the limit.
        event = charge_biggest(c, srv.live_key, name)
        balance = c.unary(WALLET + "GetBalance", wallet.GetBalanceRequest(userId=name), bearer(srv.live_key))
        assert balance.balance == "0"
        credit(Decimal(1), f"{name}-3")
        with pytest.raises(RpcError) as e:  # 1 + BIGGEST would not fit: the void is refused, nothing changes
            c.unary(VOID, ev.VoidEventRequest(eventId=event.eventId, reason="x"), bearer(srv.live_key))
        assert e.value.code == "out_of_range" and e.value.message.startswith("eventId: "), e.value
        balance = c.unary(WALLET + "GetBalance", wallet.GetBalanceRequest(userId=name), bearer(srv.live_key))
        assert balance.balance == "1"


def test_spent_saturates_instead_of_overflowing(srv: ServerHandle) -> None:
    """``spent`` (the month's spend, for caps) can pass the range when credits keep refilling a balance: it
    stops at the maximum, and usage keeps recording (no failed flush, no float on SQLite)."""
    [name] = users(1)
    with ConnectClient(srv.base_url) as c:
        key = bearer(srv.live_key)

        def settings() -> Any:
            return c.unary(WALLET + "GetUserSettings", wallet.GetUserSettingsRequest(userId=name), key)

        for round_ in range(2):
            credit = wallet.CreditRequest(userId=name, amount=str(BIGGEST), idempotencyKey=f"{name}-{round_}")
            c.unary(WALLET + "Credit", credit, key)
            charge_biggest(c, srv.live_key, name)
        assert settings().spent == str(BIGGEST)
        assert c.unary(WALLET + "GetBalance", wallet.GetBalanceRequest(userId=name), key).balance == "0"
        c.unary(
            WALLET + "Credit", wallet.CreditRequest(userId=name, amount="5", idempotencyKey=f"{name}-5"), key
        )
        debit = wallet.DebitRequest(userId=name, amount="5", idempotencyKey=f"{name}-d")
        c.unary(WALLET + "Debit", debit, key)  # the wallet's own path saturates too
        assert settings().spent == str(BIGGEST)


def test_an_overflow_is_out_of_range_never_unavailable(database_url: str) -> None:
    """Real overflow errors of both databases (SQLite's SUM "integer overflow" is an OperationalError, which
    otherwise means an outage) become OUT_OF_RANGE, never UNAVAILABLE (which clients retry)."""
    from connectrpc.code import Code
    from sqlalchemy import text

    from scrawn.server.db.engine import Database
    from scrawn.server.rpc import internal_error
    from tests.conftest import run_async

    overflow = (
        "SELECT sum(x) FROM (SELECT 9223372036854775807 AS x UNION ALL SELECT 1) AS t"
        if database_url.startswith("sqlite")
        else "SELECT CAST(9223372036854775807 AS BIGINT) + 1"
    )

    async def fail() -> BaseException:
        db = Database(database_url)
        try:
            async with db.read() as conn:
                await conn.execute(text(overflow))
        except Exception as e:
            return e
        finally:
            await db.dispose()
        raise AssertionError("no overflow")

    error = internal_error(run_async(fail()), "test")
    assert error.code == Code.OUT_OF_RANGE and error.message.startswith("Value out of range"), error
