"""A project's currency and USD conversion rate (DESIGN §6): the USD price book and overrides are billed at
the project's rate, the rate is recorded on every priced event and record, a non-USD project without a
rate is refused price-book pricing (FAILED_PRECONDITION) but explicit prices still work, and
``scrawn projects`` validates its input. Real servers on SQLite and PostgreSQL; both must give the exact
same amounts as the independent expectation below."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select
from typer.testing import CliRunner

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn.money import from_micros, to_micros
from scrawn.server.db.schema import events, projects, usage_records
from tests.clients import REGISTER, STREAM, USAGE, GrpcClient, RpcError, bearer
from tests.conftest import ServerHandle, make_server

AT = datetime(2025, 7, 1, 12, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
EUR_RATE = Decimal("0.92")
HINT = "scrawn projects set --usd-rate"


@dataclass
class Result:
    code: int
    out: str


@pytest.fixture
def scrawn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``scrawn projects …`` in this process, against one database."""
    from scrawn.server import cli, cli_support

    for name in [k for k in os.environ if k.startswith("SCRAWN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(cli_support.console, "width", 300)
    runner = CliRunner()

    def run(database_url: str, *args: str) -> Result:
        monkeypatch.setenv("SCRAWN_DATABASE_URL", database_url)
        done = runner.invoke(cli.app, list(args))
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception
        return Result(done.exit_code, done.stdout if done.exit_code == 0 else done.stderr)

    return run


@pytest.fixture
def eur_server(database_url: str, tmp_path: Path, scrawn: Callable[..., Result]) -> Iterator[ServerHandle]:
    """A running server whose (only) project is in EUR, with no rate yet."""
    handle = make_server(database_url, tmp_path)
    # Its events replay 2025 prices: a window of ten years takes them (docs/events.md#late-events).
    done = scrawn(database_url, "projects", "set", "--currency", "eur", "--late-window", "3650")
    assert done.code == 0 and "currency EUR" in done.out and "usd rate not set" in done.out, done.out
    assert HINT in done.out  # it says what to do next
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def rounded(amount: Decimal) -> Decimal:
    """The one rounding rule: half-even to the micro-unit."""
    return from_micros(to_micros(amount))


def book_cents(model: str, provider: str, **usage: int) -> Any:
    return calc_price(Usage(**usage), model, provider_id=provider, genai_request_timestamp=AT)


def fetch(server: ServerHandle, table: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return {r.idempotency_key: r for r in await conn.execute(select(table))}
        finally:
            await db.dispose()

    return asyncio.run(read())


def ai_item(key: str, model: str = "gpt-4o", **fields: Any) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.AI_TOKEN_USAGE,
        userId="eur-user",
        idempotencyKey=key,
        reportedTimestamp=AT_MS // 1000,
        aiTokenUsage=ev.AITokenUsage(model=model, provider="openai", **fields),
    )


def test_a_eur_project_bills_model_prices_at_its_rate(
    eur_server: ServerHandle, scrawn: Callable[..., Result]
) -> None:
    server = eur_server
    calc = u.CalculateCostRequest(
        model="gpt-4o", provider="openai", inputTokens=123_457, outputTokens=9_871, timestamp=AT_MS
    )
    with GrpcClient(server.grpc_target) as client:
        live = bearer(server.live_key)

        def usage(method: str, request: Any) -> Any:
            return client.unary(USAGE + method, request, live)

        # No rate yet: anything priced by the USD book is refused, and says how to fix it.
        with pytest.raises(RpcError) as no_rate:
            usage("CalculateCost", calc)
        assert no_rate.value.code == "failed_precondition" and HINT in no_rate.value.message
        assert "EUR" in no_rate.value.message
        with pytest.raises(RpcError) as no_rate_record:
            usage(
                "RecordUsage",
                u.RecordUsageRequest(
                    context="system", model="gpt-4o", inputTokens=10, idempotencyKey="early", timestamp=AT_MS
                ),
            )
        assert no_rate_record.value.code == "failed_precondition" and HINT in no_rate_record.value.message
        # ... an unknown model is still INVALID_ARGUMENT (validation first)
        with pytest.raises(RpcError) as unknown:
            usage("CalculateCost", u.CalculateCostRequest(model="no-such-model-9000", inputTokens=1))
        assert unknown.value.code == "invalid_argument"
        # ... while explicit prices are already euros and need no rate.
        res = client.unary(
            REGISTER,
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId="eur-user",
                idempotencyKey="plain",
                basicUsage=ev.BasicUsage(amount=7),
            ),
            live,
        )
        assert res.message == "Event stored successfully"
        summary = client.stream(
            STREAM,
            [
                ai_item("no-rate-book", inputTokens=1000, outputTokens=100),
                ai_item("explicit", inputTokens=1000, outputTokens=100, inputAmount=3, outputAmount=4),
            ],
            live,
        )
        [failure] = summary.failures
        # kept for repricing once the rate is set (docs/pricing-safety.md#quarantine)
        assert (failure.idempotencyKey, failure.errorCode) == ("no-rate-book", "KEPT_FOR_REPRICING")
        assert HINT in failure.message

        # The project now holds money in EUR: its currency is fixed, its rate can be set.
        refused = scrawn(server.database_url, "projects", "set", "--currency", "GBP")
        assert refused.code == 1 and "--currency" in refused.out and "events in EUR" in refused.out
        done = scrawn(server.database_url, "projects", "set", "--usd-rate", "0.92")
        assert done.code == 0 and "usd rate 0.92" in done.out, done.out
        listed = scrawn(server.database_url, "projects", "list")
        assert listed.code == 0 and server.project_id in listed.out and "0.92" in listed.out

        # CalculateCost: each part is the book's US cents × 0.92, exact, rounded once.
        book = book_cents("gpt-4o", "openai", input_tokens=123_457, output_tokens=9_871)
        cost = usage("CalculateCost", calc).cost
        assert cost.currency == "EUR" and cost.source == "book"
        assert Decimal(cost.input) == rounded(book.input_price * 100 * EUR_RATE)
        assert Decimal(cost.output) == rounded(book.output_price * 100 * EUR_RATE)
        assert Decimal(cost.total) == Decimal(cost.input) + Decimal(cost.output)

        # RecordUsage: the same cost, with the rate recorded.
        record = usage(
            "RecordUsage",
            u.RecordUsageRequest(
                context="system",
                model="gpt-4o",
                provider="openai",
                inputTokens=123_457,
                outputTokens=9_871,
                idempotencyKey="eur-record",
                timestamp=AT_MS,
            ),
        ).record
        assert record.cost == cost
        listed_records = usage("GetUsage", u.GetUsageRequest()).records
        assert [r.cost.currency for r in listed_records] == ["EUR"]

        # AI events priced by the book: every component × 0.92, rate recorded per component.
        summary = client.stream(
            STREAM, [ai_item("eur-book", inputTokens=12_345, outputTokens=678, inputCacheTokens=1000)], live
        )
        assert summary.eventsFailed == 0, summary.failures

        # A project override (entered in USD) is converted too: $1 per million = 100 US cents = 92 euro cents.
        headers = {"authorization": f"Bearer {server.dash_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
            made = http.post(
                "/api/v1/model-prices",
                json={
                    "model": "acme-chat",
                    "inputPerMillion": "1",
                    "outputPerMillion": "3",
                    "effectiveFrom": 0,
                },
            )
            assert made.status_code == 201, made.text
            tag = http.post("/api/v1/tags", json={"key": "EURO_FLAT", "price": "5"})
            assert tag.status_code == 201, tag.text
        over = usage("CalculateCost", u.CalculateCostRequest(model="acme-chat", inputTokens=10**6)).cost
        assert (over.source, over.currency, over.total) == ("override", "EUR", "92")
        summary = client.stream(
            STREAM,
            [
                ai_item("eur-override", model="acme-chat", inputTokens=1_000_000, outputTokens=0),
                ai_item(
                    "eur-tag", inputTokens=5, outputTokens=5, inputTag="EURO_FLAT", outputTag="EURO_FLAT"
                ),
            ],
            live,
        )
        assert summary.eventsFailed == 0, summary.failures
    rows = fetch(server, events)

    full = book_cents("gpt-4o", "openai", input_tokens=13_345, cache_read_tokens=1000, output_tokens=678)
    read = book_cents("gpt-4o", "openai", input_tokens=1000, cache_read_tokens=1000)
    row = rows["eur-book"]
    assert row.input_debit == rounded((full.input_price - read.input_price) * 100 * EUR_RATE)
    assert row.output_debit == rounded(full.output_price * 100 * EUR_RATE)
    assert row.input_cache_debit == rounded(read.input_price * 100 * EUR_RATE)
    assert row.debit == row.input_debit + row.output_debit + row.input_cache_debit + row.output_cache_debit
    pricing = json.loads(row.pricing)
    assert pricing["output"]["usdRate"] == "0.92" and pricing["output"]["currency"] == "EUR"
    assert pricing["input"]["priceBook"].startswith("genai-prices")

    # Explicit amounts and tags are euros already: never converted, no rate recorded.
    assert rows["plain"].debit == 7 and "usdRate" not in rows["plain"].pricing
    assert rows["explicit"].debit == 7 and "usdRate" not in rows["explicit"].pricing
    assert rows["eur-tag"].debit == 10 and "usdRate" not in rows["eur-tag"].pricing
    assert rows["eur-override"].debit == Decimal("92")
    assert json.loads(rows["eur-override"].pricing)["input"]["usdRate"] == "0.92"
    assert "no-rate-book" not in rows

    [stored] = fetch(server, usage_records).values()
    assert stored.cost == Decimal(cost.total)
    assert json.loads(stored.pricing) | {"usdRate": "0.92", "currency": "EUR"} == json.loads(stored.pricing)

    # `scrawn explain` shows the rate that priced the event.
    explained = scrawn(server.database_url, "explain", row.id)
    assert (
        explained.code == 0 and '"usdRate": "0.92"' in explained.out and '"currency": "EUR"' in explained.out
    )


def test_major_unit_projects_divide_by_the_minor_units_per_major(
    server: ServerHandle, scrawn: Callable[..., Result]
) -> None:
    calc = u.CalculateCostRequest(model="gpt-4o", provider="openai", inputTokens=10_000, timestamp=AT_MS)
    book = book_cents("gpt-4o", "openai", input_tokens=10_000)
    url = server.database_url
    with GrpcClient(server.grpc_target) as client:

        def cost() -> Any:
            return client.unary(USAGE + "CalculateCost", calc, bearer(server.live_key)).cost

        usd_cents = cost()
        assert (usd_cents.currency, Decimal(usd_cents.total)) == ("USD", rounded(book.input_price * 100))
        # A USD project counted in dollars: a US cent is 1/100 of its unit.
        assert scrawn(url, "projects", "set", "--amount-unit", "major").code == 0
        assert Decimal(cost().total) == rounded(book.input_price)
        # EUR in whole euros at 0.92 euro cents per US cent; JPY (no minor unit) at 1.5 yen per US cent.
        done = scrawn(url, "projects", "set", "--currency", "EUR", "--usd-rate", "0.92")
        assert done.code == 0 and "usd rate 0.92" in done.out, done.out
        eur = cost()
        assert (eur.currency, Decimal(eur.total)) == ("EUR", rounded(book.input_price * EUR_RATE))
        assert scrawn(url, "projects", "set", "--currency", "JPY", "--usd-rate", "1.5").code == 0
        assert Decimal(cost().total) == rounded(book.input_price * 100 * Decimal("1.5"))
        # A new currency forgets the old rate: it was for another currency.
        assert "usd rate not set" in scrawn(url, "projects", "set", "--currency", "GBP").out
        with pytest.raises(RpcError) as no_rate:
            cost()
        assert no_rate.value.code == "failed_precondition"
        # Back to USD: no rate needed, and none but 1 accepted.
        assert scrawn(url, "projects", "set", "--currency", "USD", "--amount-unit", "minor").code == 0
        assert cost() == usd_cents


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--currency", "EURO"], "--currency: must be a three-letter ISO 4217 code"),
        (["--currency", "E1R"], "--currency: must be a three-letter ISO 4217 code"),
        (["--currency", "ÉUR"], "--currency: must be a three-letter ISO 4217 code"),
        (["--currency", "EUR", "--usd-rate", "-0.92"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "0"], "--usd-rate: must be greater than 0"),
        (["--currency", "EUR", "--usd-rate", "NaN"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "Infinity"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "9.2e-1"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "0.92f"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "0,92"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", ".92"], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "0." + "1" * 19], "--usd-rate: must be a positive decimal"),
        (["--currency", "EUR", "--usd-rate", "1000000000.5"], "--usd-rate: must be at most 1000000000"),
        (["--usd-rate", "0.5"], "--usd-rate: a USD project needs no rate"),
        (["--amount-unit", "cents"], "--amount-unit: must be minor or major"),
        (["--name", " "], "--name: must be 1 to 255 characters"),
        (["--project", "no-such-project", "--usd-rate", "1"], "project not found"),
    ],
)
def test_projects_set_refuses_bad_input(
    database_url: str, tmp_path: Path, scrawn: Callable[..., Result], args: list[str], problem: str
) -> None:
    server = make_server(database_url, tmp_path)  # migrated, one project; no server process needed
    done = scrawn(database_url, "projects", "set", *args)
    assert done.code == 1 and problem in done.out, done.out

    async def stored() -> tuple[str, str, str | None]:
        db = server.db()
        try:
            async with db.read() as conn:
                row = (await conn.execute(select(projects))).one()
                return row.currency, row.amount_unit, row.usd_rate
        finally:
            await db.dispose()

    assert asyncio.run(stored()) == ("USD", "minor", None)  # nothing half-applied


def test_a_rate_keeps_its_exact_text(
    database_url: str, tmp_path: Path, scrawn: Callable[..., Result]
) -> None:
    make_server(database_url, tmp_path)
    rate = "123456789.123456789012345678"  # 27 significant digits: a float would lose most of them
    done = scrawn(database_url, "projects", "set", "--currency", "eur", "--usd-rate", rate, "--name", "Euro")
    assert done.code == 0 and f"usd rate {rate}" in done.out and "(Euro)" in done.out, done.out
    assert "0.5" in scrawn(database_url, "projects", "set", "--usd-rate", "0000.5000").out
