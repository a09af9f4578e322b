"""AI events without explicit debits are priced from the bundled genai-prices book, to the micro-unit."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.money import from_micros, to_micros
from scrawn.server.db.schema import events
from tests.clients import STREAM, GrpcClient, bearer

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
]


def _cents(usd: Decimal) -> Decimal:
    return from_micros(to_micros(usd * 100))


def _rows(server) -> dict[str, object]:
    async def read() -> dict[str, object]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(select(events).where(events.c.event_type == "AI_TOKEN_USAGE"))
                return {r.idempotency_key: r for r in rows}
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_models_are_priced_like_genai_prices(module_server) -> None:
    items = [
        ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId="ai",
            idempotencyKey=f"book-{model}",
            aiTokenUsage=ev.AITokenUsage(
                model=model, provider=provider, inputTokens=12_345, outputTokens=678, inputCacheTokens=1000
            ),
        )
        for model, provider in MODELS
    ]
    items.append(
        ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId="ai",
            idempotencyKey="book-unknown",
            aiTokenUsage=ev.AITokenUsage(model="no-such-model-9000", inputTokens=1),
        )
    )
    with GrpcClient(module_server.grpc_target) as client:
        summary = client.stream(STREAM, items, bearer(module_server.live_key))
    assert summary.eventsFailed == 1
    [failure] = summary.failures
    assert failure.errorCode == "KEPT_FOR_REPRICING"  # until the project prices the model
    assert 'aiTokenUsage.model: unknown model "no-such-model-9000"' in failure.message

    rows = _rows(module_server)
    for model, provider in MODELS:
        row = rows[f"book-{model}"]
        full = calc_price(
            Usage(input_tokens=13_345, cache_read_tokens=1000, output_tokens=678), model, provider_id=provider
        )
        read = calc_price(Usage(input_tokens=1000, cache_read_tokens=1000), model, provider_id=provider)
        assert row.output_debit == _cents(full.output_price), model
        assert row.input_cache_debit == _cents(read.input_price), model
        assert row.input_debit == _cents(full.input_price - read.input_price), model
        assert row.debit == _cents(full.total_price), model
        assert row.debit > 0


def test_explicit_debits_win_and_absent_cache_debits_are_free(module_server) -> None:
    item = ev.StreamEventRequest(
        type=ev.AI_TOKEN_USAGE,
        userId="ai",
        idempotencyKey="explicit-input",
        aiTokenUsage=ev.AITokenUsage(
            model="gpt-4o",
            provider="openai",
            inputTokens=1000,
            outputTokens=1000,
            inputCacheTokens=500,
            inputAmount=7,
        ),
    )
    with GrpcClient(module_server.grpc_target) as client:
        assert client.stream(STREAM, [item], bearer(module_server.live_key)).eventsFailed == 0
    row = _rows(module_server)["explicit-input"]
    output = calc_price(Usage(output_tokens=1000), "gpt-4o", provider_id="openai").output_price
    assert row.input_debit == Decimal(7)
    assert row.output_debit == _cents(output)
    assert row.input_cache_debit == 0


@pytest.mark.parametrize("tokens", [0, 1, 10**9])
def test_token_counts_at_the_edges(module_server, tokens: int) -> None:
    item = ev.StreamEventRequest(
        type=ev.AI_TOKEN_USAGE,
        userId="ai",
        idempotencyKey=f"edge-{tokens}",
        aiTokenUsage=ev.AITokenUsage(
            model="gpt-4o", provider="openai", inputTokens=tokens, outputTokens=tokens
        ),
    )
    with GrpcClient(module_server.grpc_target) as client:
        assert client.stream(STREAM, [item], bearer(module_server.live_key)).eventsFailed == 0
    row = _rows(module_server)[f"edge-{tokens}"]
    full = calc_price(Usage(input_tokens=tokens, output_tokens=tokens), "gpt-4o", provider_id="openai")
    assert row.debit == _cents(full.total_price)
