"""The price book and usage records through ``Scrawn`` and ``AsyncScrawn`` against a real ``scrawn serve``
(SQLite and PostgreSQL): ``list_models`` and ``calculate_cost`` agree with the server's own Connect JSON
answers and with the listed prices; reserve → confirm → ``record_usage`` → summaries and series;
``record_usage`` retried after a lost response is recorded once; hostile inputs refused before the
network."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest

from scrawn import (
    AsyncScrawn,
    CostBreakdown,
    ModelPrice,
    Scrawn,
    UsageRecord,
    UsageSummary,
)
from scrawn._proto.usage.v1 import usage_pb2 as u_pb
from scrawn.errors import ConnectionFailedError, InvalidArgumentError, NotFoundError, ValidationError
from tests.conftest import ServerHandle
from tests.sdk.conftest import LIVE_SHAPED_KEY, FlakyServer

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}
MICRO = Decimal("0.000001")
MODEL, PROVIDER = "gpt-4o-mini", "openai"
NAN = float("nan")


def user() -> str:
    return f"use-{uuid.uuid4().hex[:16]}"


def connect_json(server: ServerHandle, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """The same call in Connect JSON with plain httpx: the server's own answer, independent of the SDK."""
    res = httpx.post(
        f"{server.base_url}/usage.v1.UsageService/{method}",
        json=body,
        headers={"authorization": f"Bearer {server.live_key}"},
    )
    assert res.status_code == 200, res.text
    data: dict[str, Any] = res.json()
    return data


def cents(tokens: int, usd_per_million: Decimal) -> Decimal:
    return (tokens * usd_per_million * 100 / 1_000_000).quantize(MICRO, rounding=ROUND_HALF_EVEN)


@pytest.fixture
def client(module_server: ServerHandle) -> Any:
    with Scrawn(module_server.live_key, module_server.base_url) as c:
        yield c


@pytest.fixture
async def aclient(module_server: ServerHandle) -> Any:
    async with AsyncScrawn(module_server.live_key, module_server.base_url) as c:
        yield c


# ------------------------------------------------------------------------------------------ price book


def test_list_models_and_calculate_cost_match_the_server(module_server: ServerHandle, client: Scrawn) -> None:
    listed = client.list_models(provider=PROVIDER, search=MODEL)
    raw = connect_json(module_server, "ListModels", {"provider": PROVIDER, "search": MODEL})
    assert listed.price_book == raw["priceBook"] and listed.price_book.startswith("genai-prices")
    assert [m.model for m in listed] == [m["model"] for m in raw["models"]]
    [entry] = [m for m in listed if m.model == MODEL]
    assert isinstance(entry, ModelPrice) and entry.source == "book" and entry.in_force
    [raw_entry] = [m for m in raw["models"] if m["model"] == MODEL]
    assert entry.input_per_million == Decimal(raw_entry["inputPerMillion"])
    assert entry.output_per_million == Decimal(raw_entry["outputPerMillion"])
    assert entry.cached_input_per_million == Decimal(raw_entry["cachedInputPerMillion"])
    assert entry.cache_write_per_million is None and entry.audio_per_minute is None
    assert entry.input_per_million is not None and entry.output_per_million is not None
    assert entry.cached_input_per_million is not None

    cost = client.calculate_cost(
        model=MODEL, provider=PROVIDER, input_tokens=12_345, output_tokens=678, cached_tokens=2_000
    )
    raw_cost = connect_json(
        module_server,
        "CalculateCost",
        {
            "model": MODEL,
            "provider": PROVIDER,
            "inputTokens": 12_345,
            "outputTokens": 678,
            "cachedTokens": 2_000,
        },
    )["cost"]
    assert isinstance(cost, CostBreakdown)
    assert (cost.input, cost.output, cost.cached_input, cost.total) == tuple(
        Decimal(raw_cost[k]) for k in ("input", "output", "cachedInput", "total")
    )
    # ... and with the listed prices (USD per million tokens, costs in cents, rounded once per part).
    assert cost.input == cents(12_345 - 2_000, entry.input_per_million)
    assert cost.cached_input == cents(2_000, entry.cached_input_per_million)
    assert cost.output == cents(678, entry.output_per_million)
    assert cost.total == cost.input + cost.output + cost.cached_input + cost.cache_write + cost.audio
    assert (cost.currency, cost.model, cost.provider, cost.source) == ("USD", MODEL, PROVIDER, "book")
    assert cost.price_book == listed.price_book and cost.override_id is None

    page = client.list_models(limit=3)
    assert len(page) == 3 and page.next_page_token
    assert len(client.list_models(limit=3, page_token=page.next_page_token)) == 3


async def test_audio_embedding_and_override_prices_async(
    module_server: ServerHandle, aclient: AsyncScrawn
) -> None:
    audio = await aclient.calculate_cost(model="whisper-1", usage_type="audio_stt", audio_seconds="61.5")
    assert audio.audio == Decimal("0.615") == audio.total  # $0.006 a minute
    embedding = await aclient.calculate_cost(
        model="text-embedding-3-small", provider="openai", usage_type="embedding", input_tokens=50_000
    )
    assert embedding.input == Decimal("0.1")  # $0.02 per million tokens

    model = f"house-model-{uuid.uuid4().hex[:8]}"
    since = datetime.now(UTC) - timedelta(hours=1)
    res = await asyncio.to_thread(
        httpx.post,
        f"{module_server.base_url}/api/v1/model-prices",
        json={
            "model": model,
            "inputPerMillion": "1",
            "outputPerMillion": "2",
            "effectiveFrom": since.isoformat(),
        },
        headers={"authorization": f"Bearer {module_server.dash_key}"},
    )
    assert res.status_code == 201, res.text
    [override] = list(await aclient.list_models(search=model))
    assert (override.source, override.in_force, override.override_id) == ("override", True, res.json()["id"])
    assert override.effective_from is not None
    assert abs(override.effective_from - since) < timedelta(seconds=1)
    cost = await aclient.calculate_cost(model=model, input_tokens=1_000_000, output_tokens=500_000)
    assert (cost.source, cost.override_id) == ("override", override.override_id)
    assert (cost.input, cost.output) == (100, 100)
    with pytest.raises(InvalidArgumentError) as caught:  # before the override took effect
        await aclient.calculate_cost(model=model, input_tokens=1, timestamp=since - timedelta(minutes=1))
    assert caught.value.field == "model"
    with pytest.raises(InvalidArgumentError) as caught:
        await aclient.calculate_cost(model="no-such-model-anywhere", input_tokens=1)
    assert caught.value.field == "model"


# ----------------------------------------------------------------------------------------- usage records


def test_reserve_confirm_record_and_query_sync(client: Scrawn) -> None:
    u = user()
    client.wallet.credit(u, 500, kind="top_up")
    worst = client.calculate_cost(model=MODEL, provider=PROVIDER, input_tokens=1_200, output_tokens=800)
    at = datetime.now(UTC).replace(microsecond=123_000)
    tokens = {"input_tokens": 1_100, "output_tokens": 250, "cached_tokens": 300}
    cost = client.calculate_cost(model=MODEL, provider=PROVIDER, timestamp=at, **tokens)
    assert cost.total < worst.total

    with client.create_reservation(u, worst.total, ttl_seconds=120) as hold:
        done = hold.confirm(cost.total)
    record = client.record_usage(
        transaction_id=done.transaction_id,  # context "customer" is implied
        user_id=u,
        model=MODEL,
        provider=PROVIDER,
        timestamp=at,
        description="chat completion",
        idempotency_key=f"usage-{hold.id}",
        **tokens,
    )
    assert isinstance(record, UsageRecord) and not record.duplicate
    assert (record.context, record.user_id, record.transaction_id, record.reservation_id) == (
        "customer",
        u,
        done.transaction_id,
        hold.id,
    )
    assert record.cost is not None and record.cost.total == cost.total
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (1_100, 250, 300)
    assert record.timestamp == at and record.description == "chat completion"
    assert client.wallet.balance(u).balance == 500 - cost.total

    again = client.record_usage(
        transaction_id=done.transaction_id, user_id=u, model=MODEL, provider=PROVIDER, timestamp=at,
        description="chat completion", idempotency_key=f"usage-{hold.id}", **tokens,
    )  # fmt: skip
    assert again.duplicate and again.id == record.id

    system = client.record_usage(
        context="system", user_id=u, model="text-embedding-3-small", provider="openai",
        usage_type="embedding", input_tokens=10_000, timestamp=at + timedelta(seconds=1),
    )  # fmt: skip
    assert system.context == "system" and system.transaction_id is None
    assert system.cost is not None and system.cost.total == Decimal("0.02")

    page = client.get_usage(user_id=u)
    assert [r.id for r in page] == [system.id, record.id] and page.next_page_token is None
    assert page.summary is None
    assert [r.id for r in client.get_usage(user_id=u, context="customer")] == [record.id]
    assert [r.id for r in client.get_usage(transaction_id=done.transaction_id)] == [record.id]
    first = client.get_usage(user_id=u, limit=1)
    assert [r.id for r in first] == [system.id] and first.next_page_token
    assert [r.id for r in client.get_usage(user_id=u, page_token=first.next_page_token)] == [record.id]

    summary = client.get_usage_summary(user_id=u)
    assert isinstance(summary, UsageSummary)
    total = cost.total + Decimal("0.02")
    assert (summary.totals.cost, summary.totals.records, summary.totals.input_tokens) == (total, 2, 11_100)
    assert list(summary.by_model) == [MODEL, "text-embedding-3-small"]  # most expensive first
    assert summary.by_model[MODEL].cost == cost.total
    assert summary.by_context == {
        "customer": summary.by_model[MODEL],
        "system": summary.by_model["text-embedding-3-small"],
    }
    assert client.get_usage(user_id=u, summary=True).summary == summary
    only = client.get_usage_summary(user_id=u, start_time=at, end_time=at + timedelta(milliseconds=1))
    assert only.totals.records == 1 and only.totals.cost == cost.total

    series = client.get_usage_series(
        bucket="hour",
        time_zone="Europe/Berlin",
        user_id=u,
        start_time=at - timedelta(hours=2),
        end_time=int((at + timedelta(hours=1)).timestamp() * 1000),  # Unix milliseconds work too
    )
    assert series.bucket == "hour" and series.time_zone == "Europe/Berlin"
    assert len(series) in (3, 4)
    assert sum(b.totals.cost for b in series) == total
    assert sum(b.totals.records for b in series) == 2
    for bucket in series:
        assert bucket.start.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
        assert bucket.start == bucket.start_time and bucket.end_time - bucket.start_time == timedelta(hours=1)


async def test_reserve_confirm_record_and_query_async(aclient: AsyncScrawn) -> None:
    u = user()
    await aclient.wallet.credit(u, 100)
    async with aclient.create_reservation(u, 10) as hold:
        cost = await aclient.calculate_cost(
            model=MODEL, provider=PROVIDER, input_tokens=2_000, output_tokens=100
        )
        hold.set_actual(cost.total)
    assert hold.transaction_id is not None
    record = await aclient.record_usage(
        context="customer", user_id=u, transaction_id=hold.transaction_id, model=MODEL, provider=PROVIDER,
        input_tokens=2_000, output_tokens=100,
    )  # fmt: skip
    assert uuid.UUID(record.idempotency_key) and record.cost is not None
    summary = await aclient.get_usage_summary(user_id=u)
    assert summary.totals.cost == record.cost.total == cost.total
    page = await aclient.get_usage(user_id=u, summary=True)
    assert page.summary == summary
    now = datetime.now(UTC)
    series = await aclient.get_usage_series(
        bucket="day", start_time=now - timedelta(days=1), end_time=now + timedelta(hours=1), user_id=u
    )
    assert sum(b.totals.records for b in series) == 1
    with pytest.raises(NotFoundError) as caught:  # a transaction that is not a capture of this user
        await aclient.record_usage(
            user_id=user(), transaction_id=hold.transaction_id, model=MODEL, input_tokens=1
        )
    assert caught.value.field == "transactionId"


def test_record_usage_retried_after_a_lost_response_is_recorded_once(
    module_server: ServerHandle, flaky: FlakyServer
) -> None:
    u = user()
    flaky.script = ["forward_drop", "resource_exhausted"]
    with Scrawn(module_server.live_key, flaky.url, max_retries=3, **FAST) as client:
        record = client.record_usage(
            context="system", user_id=u, model=MODEL, input_tokens=10, output_tokens=1
        )
        assert len(flaky.attempts) == 3
        keys = {u_pb.RecordUsageRequest.FromString(a.body).idempotencyKey for a in flaky.attempts}
        assert keys == {record.idempotency_key} and record.duplicate
        assert client.get_usage_summary(user_id=u).totals.records == 1


# ---------------------------------------------------------------------------------------- hostile inputs


def _cases(c: Any) -> list[tuple[str, Callable[[], Any]]]:
    tid = str(uuid.uuid4())
    rec: dict[str, Any] = {"context": "system", "model": MODEL, "input_tokens": 1}
    cost: dict[str, Any] = {"model": MODEL, "input_tokens": 1}
    cases: list[tuple[str, Callable[[], Any]]] = []
    for call, base in ((c.record_usage, rec), (c.calculate_cost, cost)):
        bad_args: list[tuple[str, dict[str, Any]]] = [
            ("model", {"model": ""}),
            ("model", {"model": None}),
            ("model", {"model": "a\nb"}),
            ("model", {"model": "m" * 256}),
            ("provider", {"provider": "open ai"}),
            ("provider", {"provider": 5}),
            ("usage_type", {"usage_type": "video"}),
            ("input_tokens", {"input_tokens": -1}),
            ("input_tokens", {"input_tokens": 1.5}),
            ("input_tokens", {"input_tokens": True}),
            ("input_tokens", {"input_tokens": 10**12 + 1}),
            ("output_tokens", {"output_tokens": "3"}),
            ("cached_tokens", {"cached_tokens": 2}),
            ("cache_write_tokens", {"cache_write_tokens": 5}),
            ("audio_seconds", {"audio_seconds": "1"}),
            ("audio_seconds", {"usage_type": "audio_stt", "audio_seconds": NAN}),
            ("audio_seconds", {"usage_type": "audio_stt", "audio_seconds": "-1"}),
            ("audio_seconds", {"usage_type": "audio_stt", "audio_seconds": "1.0001"}),
            ("audio_seconds", {"usage_type": "audio_stt", "audio_seconds": 10**8}),
            ("output_tokens", {"usage_type": "embedding", "output_tokens": 1}),
            ("input_tokens", {"input_tokens": 0}),
            ("timestamp", {"timestamp": datetime(2025, 1, 1)}),
            ("timestamp", {"timestamp": "2025-01-01"}),
            ("timestamp", {"timestamp": -5}),
            ("timestamp", {"timestamp": 0}),
        ]
        for field, args in bad_args:
            cases.append((field, lambda call=call, args={**base, **args}: call(**args)))
    for field, args in [
        ("context", {"context": None}),
        ("context", {"context": "admin"}),
        ("user_id", {"context": "customer", "transaction_id": tid}),
        ("user_id", {"context": "customer", "transaction_id": tid, "user_id": ""}),
        ("transaction_id", {"context": "customer", "user_id": "u"}),
        ("transaction_id", {"context": "customer", "user_id": "u", "transaction_id": "not-a-uuid"}),
        ("transaction_id", {"context": "system", "transaction_id": tid}),
        ("user_id", {"context": "system", "user_id": "x" * 257}),
        ("description", {"description": "d" * 256}),
        ("idempotency_key", {"idempotency_key": ""}),
        ("idempotency_key", {"idempotency_key": "k\x00"}),
    ]:
        cases.append((field, lambda args={**rec, **args}: c.record_usage(**args)))
    for method in (c.get_usage, c.get_usage_summary):
        for field, args in [
            ("context", {"context": "both"}),
            ("user_id", {"user_id": ""}),
            ("model", {"model": ""}),
            ("usage_type", {"usage_type": "text "}),
            ("transaction_id", {"transaction_id": "42"}),
            ("start_time", {"start_time": datetime(2025, 1, 1)}),
            ("end_time", {"end_time": 1.5}),
            ("end_time", {"start_time": 2_000, "end_time": 1_000}),
        ]:
            cases.append((field, lambda method=method, args=args: method(**args)))
    day = {"start_time": 1_000, "end_time": 90_000_000}
    cases += [
        ("summary", lambda: c.get_usage(summary="yes")),
        ("limit", lambda: c.get_usage(limit=0)),
        ("limit", lambda: c.get_usage(limit=501)),
        ("page_token", lambda: c.get_usage(page_token=b"x")),
        ("bucket", lambda: c.get_usage_series(bucket="week", **day)),
        ("time_zone", lambda: c.get_usage_series(bucket="day", time_zone="", **day)),
        ("time_zone", lambda: c.get_usage_series(bucket="day", time_zone="../../etc/passwd", **day)),
        ("time_zone", lambda: c.get_usage_series(bucket="day", time_zone=None, **day)),
        ("start_time", lambda: c.get_usage_series(bucket="day", start_time=None, end_time=5)),
        ("end_time", lambda: c.get_usage_series(bucket="day", start_time=5, end_time=None)),
        ("limit", lambda: c.list_models(limit=1001)),
        ("limit", lambda: c.list_models(limit=-1)),
        ("at", lambda: c.list_models(at=datetime(2025, 1, 1))),
        ("search", lambda: c.list_models(search=5)),
        ("provider", lambda: c.list_models(provider="a b")),
    ]
    return cases


def test_hostile_usage_inputs_are_refused_before_the_network_sync(closed_url: str) -> None:
    with Scrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0) as c:
        cases = _cases(c)
        assert len(cases) > 80
        for field, call in cases:
            with pytest.raises(ValidationError) as caught:
                call()
            assert caught.value.field == field, (field, caught.value)
        with pytest.raises(ConnectionFailedError):
            c.list_models()


async def test_hostile_usage_inputs_are_refused_before_the_network_async(closed_url: str) -> None:
    async with AsyncScrawn(LIVE_SHAPED_KEY, closed_url, max_retries=0) as c:
        for field, call in _cases(c):
            with pytest.raises(ValidationError) as caught:
                await call()
            assert caught.value.field == field, (field, caught.value)
        with pytest.raises(ConnectionFailedError):
            await c.calculate_cost(model=MODEL, input_tokens=1)
