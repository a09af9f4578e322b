"""The model price book and per-project overrides: ListModels, CalculateCost, /api/v1/model-prices, and AI
events and usage records priced with the prices in force at their time (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn.money import from_micros, to_micros
from scrawn.server.db.schema import events
from tests.clients import STREAM, USAGE, ConnectClient, GrpcClient, RpcError, bearer

# (model, provider): well-known models whose book prices must come out to the micro-unit.
WELL_KNOWN = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("gemini-2.5-flash", "google"),
    ("gemini-2.5-pro", "google"),
    ("mistral-large-latest", "mistral"),
    ("text-embedding-3-small", "openai"),
]
AT = datetime(2025, 7, 1, 12, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)


def cents(usd: Decimal) -> str:
    """genai-prices' USD → the server's answer: cents rounded once, half-even, to the micro-unit."""
    return str(from_micros(to_micros(usd * 100)))


def same(a: str, b: str) -> bool:
    return Decimal(a) == Decimal(b)


@pytest.fixture
def rpc(module_server):
    with GrpcClient(module_server.grpc_target) as c:
        auth = bearer(module_server.live_key)
        yield lambda method, request: c.unary(USAGE + method, request, auth)


@pytest.fixture
def api(module_server):
    headers = {"authorization": f"Bearer {module_server.dash_key}"}
    with httpx.Client(base_url=module_server.base_url, headers=headers, timeout=30) as http:
        yield http


@pytest.mark.parametrize(("model", "provider"), WELL_KNOWN)
def test_calculate_cost_matches_genai_prices_to_the_micro_unit(rpc, model: str, provider: str) -> None:
    embedding = model.startswith("text-embedding")
    inp, out, cached = (123_457, 0, 0) if embedding else (123_457, 9_871, 40_000)
    # tiered models (gemini-2.5-pro) cross their threshold too
    for scale in (1, 3):
        res = rpc(
            "CalculateCost",
            u.CalculateCostRequest(
                model=model,
                provider=provider,
                usageType="embedding" if embedding else "text",
                inputTokens=inp * scale,
                outputTokens=out * scale,
                cachedTokens=cached * scale,
                timestamp=AT_MS,
            ),
        ).cost
        full = calc_price(
            Usage(input_tokens=inp * scale, output_tokens=out * scale, cache_read_tokens=cached * scale),
            model,
            provider_id=provider,
            genai_request_timestamp=AT,
        )
        assert (res.source, res.currency, res.model, res.provider) == ("book", "USD", full.model.id, provider)
        assert res.priceBook.startswith("genai-prices ")
        assert same(res.output, cents(full.output_price)), model
        parts = sum(Decimal(x) for x in (res.input, res.output, res.cachedInput, res.cacheWrite, res.audio))
        assert Decimal(res.total) == parts
        # Each part is rounded once; together they are within a micro-unit per part of genai-prices' total.
        assert abs(Decimal(res.total) - full.total_price * 100) <= Decimal("0.000005"), model
        if cached and full.model_price.cache_read_mtok is not None:
            rate = _unit(full.model_price.cache_read_mtok, inp * scale)
            assert same(res.cachedInput, cents(rate * cached * scale / 1_000_000)), model
            assert same(res.input, cents(full.input_price - rate * cached * scale / 1_000_000)), model
        else:  # no cache price: cached tokens cost the input price, inside ``input``
            assert res.cachedInput == "0" and same(res.input, cents(full.input_price)), model


def _unit(price, total_input: int) -> Decimal:
    """The per-MTok rate genai-prices applies to every unit of a call with ``total_input`` input tokens."""
    if not hasattr(price, "tiers"):
        return Decimal(price)
    rate = price.base
    for tier in price.tiers:
        if total_input > tier.start:
            rate = tier.price
    return Decimal(rate)


@pytest.mark.parametrize(("model", "provider"), WELL_KNOWN)
def test_list_models_rates_are_the_books(rpc, model: str, provider: str) -> None:
    book = calc_price(Usage(input_tokens=1), model, provider_id=provider, genai_request_timestamp=AT)
    found = rpc(
        "ListModels", u.ListModelsRequest(provider=provider, search=book.model.id, at=AT_MS, limit=1000)
    ).models
    entry = next(m for m in found if m.model == book.model.id)
    prices = book.model_price

    def rate(value) -> Decimal | None:  # a tiered price is listed by its base rate
        return None if value is None else Decimal(getattr(value, "base", value))

    def listed(text: str) -> Decimal | None:
        return Decimal(text) if text else None

    assert (entry.source, entry.inForce, entry.provider) == ("book", True, provider)
    assert listed(entry.inputPerMillion) == rate(prices.input_mtok)
    assert listed(entry.outputPerMillion) == rate(prices.output_mtok)
    assert listed(entry.cachedInputPerMillion) == rate(prices.cache_read_mtok)
    assert listed(entry.cacheWritePerMillion) == rate(prices.cache_write_mtok)
    assert entry.tiered == any(hasattr(v, "tiers") for v in prices.__dict__.values())


def test_list_models_shows_the_book_per_million(rpc) -> None:
    found = rpc(
        "ListModels", u.ListModelsRequest(provider="openai", search="gpt-4o-mini", at=AT_MS, limit=1000)
    )
    entry = next(m for m in found.models if m.model == "gpt-4o-mini")
    book = calc_price(
        Usage(input_tokens=1_000_000), "gpt-4o-mini", provider_id="openai", genai_request_timestamp=AT
    )
    prices = book.model_price
    assert (entry.source, entry.provider, entry.inForce) == ("book", "openai", True)
    assert Decimal(entry.inputPerMillion) == prices.input_mtok
    assert Decimal(entry.outputPerMillion) == prices.output_mtok
    assert Decimal(entry.cachedInputPerMillion) == prices.cache_read_mtok
    assert found.priceBook.startswith("genai-prices")
    assert all(m.provider == "openai" and "gpt-4o-mini" in (m.model + m.name).lower() for m in found.models)

    whisper = rpc("ListModels", u.ListModelsRequest(provider="openai", search="whisper-1")).models
    assert [m.audioPerMinute for m in whisper if m.model == "whisper-1"] == ["0.006"]  # $0.36 an hour

    first = rpc("ListModels", u.ListModelsRequest(limit=2))
    second = rpc("ListModels", u.ListModelsRequest(limit=2, pageToken=first.nextPageToken))
    assert len(first.models) == 2 and first.nextPageToken and second.models[0].model != first.models[0].model


def test_audio_is_priced_per_second_where_the_book_has_it(rpc) -> None:
    res = rpc(
        "CalculateCost",
        u.CalculateCostRequest(
            model="whisper-1", usageType="audio_stt", audioSeconds="61.5", timestamp=AT_MS
        ),
    ).cost
    assert res.audio == "0.615" and res.total == "0.615"  # 61.5 s at $0.36 / hour = 0.615 cents
    with pytest.raises(RpcError) as no_audio:
        rpc("CalculateCost", u.CalculateCostRequest(model="gpt-4o", usageType="audio_stt", audioSeconds="10"))
    assert no_audio.value.code == "invalid_argument" and "model:" in no_audio.value.message
    assert "no audio price" in no_audio.value.message


def test_an_override_applies_only_from_its_effective_time(module_server, rpc, api) -> None:
    module_server.set_late_window(3650)  # its events are reported in 2025 (docs/events.md#late-events)
    effective = datetime(2025, 3, 1, tzinfo=UTC)
    t0 = int(effective.timestamp() * 1000)
    res = api.post(
        "/api/v1/model-prices",
        json={
            "model": "GPT-4.1-nano",
            "provider": "openai",
            "inputPerMillion": "0.05",
            "outputPerMillion": 0.2,  # a JSON number is read exactly, never as a float
            "cachedInputPerMillion": "0.0125",
            "effectiveFrom": "2025-03-01T00:00:00Z",
        },
    )
    assert res.status_code == 201, res.text
    override = res.json()
    assert override["model"] == "gpt-4.1-nano" and override["effectiveFromMs"] == t0
    assert (override["inputPerMillion"], override["outputPerMillion"]) == ("0.05", "0.2")

    def cost(at: int, model: str = "gpt-4.1-nano") -> u.CostBreakdown:
        return rpc(
            "CalculateCost",
            u.CalculateCostRequest(
                model=model,
                provider="openai",
                inputTokens=1_000_000,
                outputTokens=500_000,
                cachedTokens=200_000,
                timestamp=at,
            ),
        ).cost

    before = cost(t0 - 1)
    book = calc_price(
        Usage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=200_000),
        "gpt-4.1-nano",
        provider_id="openai",
        genai_request_timestamp=datetime.fromtimestamp((t0 - 1) / 1000, UTC),
    )
    assert before.source == "book" and same(before.output, cents(book.output_price))
    after = cost(t0)
    assert (after.source, after.overrideId) == ("override", override["id"])
    # 800k uncached at $0.05 + 200k cached at $0.0125 + 500k out at $0.2 (per million), in cents
    assert (after.input, after.cachedInput, after.output, after.total) == ("4", "0.25", "10", "14.25")

    # A later negotiated rate takes over from its own time; the first still prices the time between.
    t1 = t0 + 30 * 86_400_000
    res = api.post(
        "/api/v1/model-prices",
        json={
            "model": "gpt-4.1-nano",
            "inputPerMillion": "0.04",
            "outputPerMillion": "0.16",
            "effectiveFrom": t1,
        },
    )
    assert res.status_code == 201, res.text
    second = res.json()["id"]
    assert cost(t1 - 1).overrideId == override["id"]
    later = cost(t1)
    assert (
        later.overrideId == second and later.cachedInput == "0.8"
    )  # no cache rate: cached at the input rate

    listed = rpc("ListModels", u.ListModelsRequest(search="gpt-4.1-nano", provider="openai", at=t1)).models
    overrides = {m.overrideId: m for m in listed if m.source == "override"}
    assert overrides[second].inForce and not overrides[override["id"]].inForce
    assert overrides[override["id"]].cachedInputPerMillion == "0.0125"
    assert not next(m for m in listed if m.source == "book" and m.model == "gpt-4.1-nano").inForce
    early = rpc("ListModels", u.ListModelsRequest(search="gpt-4.1-nano", provider="openai", at=t0 - 1)).models
    assert next(m for m in early if m.source == "book" and m.model == "gpt-4.1-nano").inForce

    # AI events without debits are priced with the prices in force at their reported time, too.
    items = [
        ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId="override-user",
            idempotencyKey=f"ovr-{at}",
            reportedTimestamp=at // 1000,
            aiTokenUsage=ev.AITokenUsage(
                model="gpt-4.1-nano",
                provider="openai",
                inputTokens=800_000,
                outputTokens=500_000,
                inputCacheTokens=200_000,
            ),
        )
        for at in (t0 - 1000, t0, t1)
    ]
    with GrpcClient(module_server.grpc_target) as client:
        assert client.stream(STREAM, items, bearer(module_server.live_key)).eventsFailed == 0
    rows = _events(module_server)
    assert rows[f"ovr-{t0 - 1000}"].debit == from_micros(to_micros(book.total_price * 100))
    assert rows[f"ovr-{t0}"].debit == Decimal("14.25")
    assert rows[f"ovr-{t1}"].debit == Decimal("12")  # $0.04 * 0.8 + $0.04 * 0.2 + $0.16 * 0.5
    assert '"priceOverride"' in rows[f"ovr-{t0}"].pricing

    # Deleting an override prices later usage with what remains (the earlier override, then the book).
    assert api.delete(f"/api/v1/model-prices/{second}").status_code == 204
    assert cost(t1).overrideId == override["id"]
    assert api.delete(f"/api/v1/model-prices/{second}").status_code == 404
    listed_api = api.get("/api/v1/model-prices", params={"model": "gpt-4.1-nano"}).json()["modelPrices"]
    assert [o["id"] for o in listed_api] == [override["id"]]


def test_custom_model_with_audio_price(rpc, api) -> None:
    with pytest.raises(RpcError) as unknown:
        rpc("CalculateCost", u.CalculateCostRequest(model="acme-voice-1", inputTokens=1))
    assert unknown.value.code == "invalid_argument"
    assert 'model: unknown model "acme-voice-1"' in unknown.value.message
    res = api.post(
        "/api/v1/model-prices",
        json={
            "model": "acme-voice-1",
            "audioPerMinute": "0.006",
            "effectiveFrom": "2020-01-01T00:00:00+02:00",
        },
    )
    assert res.status_code == 201, res.text
    cost = rpc(
        "CalculateCost",
        u.CalculateCostRequest(model="acme-voice-1", usageType="audio_tts", audioSeconds="90"),
    ).cost
    assert (cost.audio, cost.total, cost.source) == ("0.9", "0.9", "override")
    with pytest.raises(RpcError) as tokens:
        rpc("CalculateCost", u.CalculateCostRequest(model="acme-voice-1", inputTokens=10))
    assert tokens.value.code == "invalid_argument" and "model:" in tokens.value.message
    assert "no input price" in tokens.value.message
    # An override for one provider leaves other providers (and no provider) to the book/other overrides.
    res = api.post(
        "/api/v1/model-prices",
        json={
            "model": "acme-chat",
            "provider": "acme",
            "inputPerMillion": "1",
            "outputPerMillion": "2",
            "effectiveFrom": 0,
        },
    )
    assert res.status_code == 201
    assert (
        rpc(
            "CalculateCost", u.CalculateCostRequest(model="acme-chat", provider="acme", inputTokens=10**6)
        ).cost.total
        == "100"
    )
    with pytest.raises(RpcError) as other:
        rpc("CalculateCost", u.CalculateCostRequest(model="acme-chat", inputTokens=1))
    assert 'unknown model "acme-chat"' in other.value.message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputPerMillion": "1"}, "model"),
        ({"model": "", "inputPerMillion": "1"}, "model"),
        ({"model": "m"}, "inputPerMillion"),
        ({"model": "m", "inputPerMillion": "-1"}, "inputPerMillion"),
        ({"model": "m", "outputPerMillion": "NaN"}, "outputPerMillion"),
        ({"model": "m", "outputPerMillion": "Infinity"}, "outputPerMillion"),
        ({"model": "m", "inputPerMillion": "1e400"}, "inputPerMillion"),
        ({"model": "m", "inputPerMillion": "0.000000001"}, "inputPerMillion"),
        ({"model": "m", "inputPerMillion": True}, "inputPerMillion"),
        ({"model": "m", "audioPerMinute": "abc"}, "audioPerMinute"),
        ({"model": "m", "inputPerMillion": "1", "effectiveFrom": "2025-01-01T00:00:00"}, "effectiveFrom"),
        ({"model": "m", "inputPerMillion": "1", "effectiveFrom": "yesterday"}, "effectiveFrom"),
        ({"model": "m", "inputPerMillion": "1", "effectiveFrom": -5}, "effectiveFrom"),
        ({"model": "m", "inputPerMillion": "1", "provider": "a b"}, "provider"),
        ({"model": "x" * 256, "inputPerMillion": "1"}, "model"),
    ],
)
def test_hostile_override_bodies_name_the_field(api, body: dict, field: str) -> None:
    res = api.post("/api/v1/model-prices", json=body)
    assert res.status_code == 400, res.text
    assert res.json()["field"] == field and res.json()["code"] == "invalid_argument"


def test_model_prices_api_needs_a_dash_key(module_server, api) -> None:
    live = {"authorization": f"Bearer {module_server.live_key}"}
    assert api.get("/api/v1/model-prices", headers=live).status_code == 403
    assert api.delete(f"/api/v1/model-prices/{uuid.uuid4()}").status_code == 404
    assert api.delete("/api/v1/model-prices/not-a-uuid").json()["field"] == "id"


@pytest.mark.parametrize(
    ("request_", "field", "code"),
    [
        (u.CalculateCostRequest(model="no-such-model-9000", inputTokens=1), "model", "invalid_argument"),
        (u.CalculateCostRequest(model="", inputTokens=1), "model", "invalid_argument"),
        (
            u.CalculateCostRequest(model="gpt-4o", provider="nope", inputTokens=1),
            "provider",
            "invalid_argument",
        ),
        (u.CalculateCostRequest(model="gpt-4o", inputTokens=-1), "inputTokens", "invalid_argument"),
        (u.CalculateCostRequest(model="gpt-4o", outputTokens=10**13), "outputTokens", "invalid_argument"),
        (
            u.CalculateCostRequest(model="gpt-4o", inputTokens=5, cachedTokens=6),
            "cachedTokens",
            "invalid_argument",
        ),
        (u.CalculateCostRequest(model="gpt-4o"), "inputTokens", "invalid_argument"),
        (
            u.CalculateCostRequest(model="gpt-4o", inputTokens=1, usageType="video"),
            "usageType",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(model="whisper-1", usageType="audio_stt", audioSeconds="NaN"),
            "audioSeconds",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(model="whisper-1", usageType="audio_stt", audioSeconds="-3"),
            "audioSeconds",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(model="whisper-1", usageType="audio_stt", audioSeconds="1e12"),
            "audioSeconds",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(model="gpt-4o", inputTokens=1, audioSeconds="3"),
            "audioSeconds",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(model="gpt-4o", inputTokens=1, timestamp=-1),
            "timestamp",
            "invalid_argument",
        ),
        (
            u.CalculateCostRequest(
                model="text-embedding-3-small", usageType="embedding", inputTokens=1, outputTokens=1
            ),
            "outputTokens",
            "invalid_argument",
        ),
        (u.CalculateCostRequest(model="text-embedding-3-small", outputTokens=1), "model", "invalid_argument"),
    ],
)
def test_hostile_cost_requests_name_the_field(module_server, request_, field: str, code: str) -> None:
    with ConnectClient(module_server.base_url) as client, pytest.raises(RpcError) as err:
        client.unary(USAGE + "CalculateCost", request_, bearer(module_server.live_key))
    assert err.value.code == code
    assert f"{field}:" in err.value.message


def test_list_models_rejects_bad_paging(rpc) -> None:
    for request_, field in [
        (u.ListModelsRequest(limit=-1), "limit"),
        (u.ListModelsRequest(limit=1001), "limit"),
        (u.ListModelsRequest(pageToken="abc"), "pageToken"),
        (u.ListModelsRequest(at=-1), "at"),
    ]:
        with pytest.raises(RpcError) as err:
            rpc("ListModels", request_)
        assert err.value.code == "invalid_argument" and f"{field}:" in err.value.message


def _events(server) -> dict[str, object]:
    async def read() -> dict[str, object]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(select(events).where(events.c.user_id == "override-user"))
                return {r.idempotency_key: r for r in rows}
        finally:
            await db.dispose()

    return asyncio.run(read())
