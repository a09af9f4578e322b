"""The built-in LLM model price book: genai-prices' bundled data, offline (its updater is never started).

Token semantics: ``inputTokens`` are uncached input tokens, ``inputCacheTokens`` are cache reads and
``outputCacheTokens`` are cache writes. genai-prices counts cached tokens *inside* its ``input_tokens``,
so we hand it their sum. Prices come in USD; amounts here are cents (USD minor units).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import genai_prices
from genai_prices import Usage, data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices, calc_unit_price

from scrawn.server.clock import now_ms

CENTS_PER_USD = Decimal(100)
SOURCE = f"genai-prices {genai_prices.__version__}"
MILLION = Decimal(1_000_000)
USAGE_TYPES = ("text", "audio_stt", "audio_tts", "embedding")
AUDIO_TYPES = ("audio_stt", "audio_tts")


class UnknownModel(LookupError):
    def __init__(self, model: str) -> None:
        super().__init__(f'unknown model "{model}"')
        self.model = model


class UnknownProvider(LookupError):
    def __init__(self, provider: str) -> None:
        super().__init__(f'unknown provider "{provider}"')
        self.provider = provider


class PriceUnavailable(UnknownModel):
    """The entry that prices a model has no price for part of the usage (never silently billed 0)."""

    def __init__(self, model: str, problem: str) -> None:
        LookupError.__init__(self, f'{problem} for model "{model}"')
        self.model = model


@dataclass(frozen=True)
class TokenPrice:
    """What each part of one call costs, in cents, exactly as the price book gives it."""

    input: Decimal
    output: Decimal
    input_cache: Decimal
    output_cache: Decimal
    model: str
    provider: str
    override: str | None = None  # the project's price override that priced it, if any

    def pricing(self) -> dict[str, str]:
        if self.override is not None:
            return {"priceOverride": self.override, "model": self.model, "provider": self.provider}
        return {"priceBook": SOURCE, "model": self.model, "provider": self.provider}


def price_tokens(
    model: str,
    provider: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    input_cache_tokens: int = 0,
    output_cache_tokens: int = 0,
    at: datetime | None = None,
    overrides: Iterable[Override] = (),
) -> TokenPrice:
    """An AI event's parts (``inputTokens`` uncached, ``inputCacheTokens`` cache reads,
    ``outputCacheTokens`` cache writes), priced by the project's override in force at ``at``, else by
    the book."""
    when = at or datetime.fromtimestamp(now_ms() / 1000, tz=UTC)
    try:
        cost = calculate(
            model,
            provider,
            LlmUsage(
                input_tokens=input_tokens + input_cache_tokens + output_cache_tokens,
                output_tokens=output_tokens,
                cached_tokens=input_cache_tokens,
                cache_write_tokens=output_cache_tokens,
            ),
            at_ms=datetime_to_ms(when),
            overrides=overrides,
            strict=False,
        )
    except UnknownProvider:
        raise UnknownModel(model) from None
    return TokenPrice(
        input=max(cost.input, Decimal(0)),
        output=cost.output,
        input_cache=cost.cached,
        output_cache=cost.cache_write,
        model=cost.model,
        provider=cost.provider,
        override=cost.override_id,
    )


# Per-project overrides and the full cost breakdown (docs/usage.md) -----------------------------------------


@dataclass(frozen=True)
class Override:
    """A project's prices for one model (and provider, or every provider) from ``effective_from`` on.
    Rates are minor units (US cents) per million tokens and per minute of audio; ``None`` = not priced
    (cache rates then fall back to the input rate; a missing input, output or audio rate is an error)."""

    id: str
    model: str  # lower-case
    provider: str  # lower-case; "" = every provider
    effective_from: int  # Unix ms
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    audio_minute: Decimal | None
    created_at: int = 0
    changed_by: str | None = None  # who made its latest change (creation or delete): key id or "cli"


@dataclass(frozen=True)
class LlmUsage:
    """One call's usage. ``input_tokens`` counts every input token, cached ones included (as providers'
    usage objects and genai-prices do); ``cached_tokens`` and ``cache_write_tokens`` are parts of it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    audio_seconds: Decimal = Decimal(0)
    usage_type: str = "text"


@dataclass(frozen=True)
class Cost:
    """What each part of one call costs in minor units (cents), exact (not yet rounded)."""

    input: Decimal  # uncached input tokens (and any per-request fee of the book)
    output: Decimal
    cached: Decimal  # cache reads
    cache_write: Decimal
    audio: Decimal
    model: str
    provider: str
    override_id: str | None = None

    @property
    def total(self) -> Decimal:
        return self.input + self.output + self.cached + self.cache_write + self.audio

    @property
    def source(self) -> str:
        return "book" if self.override_id is None else "override"

    def pricing(self) -> dict[str, str]:
        base = {"model": self.model, "provider": self.provider}
        if self.override_id is not None:
            return {"priceOverride": self.override_id, **base}
        return {"priceBook": SOURCE, **base}


def normalise_model(model: str) -> str:
    return model.strip().lower()


def normalise_provider(provider: str | None) -> str:
    """ "" for no provider (``unknown``, the events' default, included)."""
    value = (provider or "").strip().lower()
    return "" if value == "unknown" else value


def datetime_to_ms(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(milliseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_datetime(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms // 1000, tz=UTC) + timedelta(milliseconds=at_ms % 1000)


def choose_override(
    overrides: Iterable[Override], model: str, provider: str | None, at_ms: int
) -> Override | None:
    """The override in force at ``at_ms``: the greatest ``effective_from`` not after it among the model's
    overrides for this provider or for every provider (on a tie the provider's own wins, then the newest)."""
    wanted, prov = normalise_model(model), normalise_provider(provider)
    best: Override | None = None
    for o in overrides:
        if o.model != wanted or o.provider not in ("", prov) or o.effective_from > at_ms:
            continue
        if best is None or _rank(o) > _rank(best):
            best = o
    return best


def _rank(o: Override) -> tuple[int, bool, int, str]:
    return (o.effective_from, o.provider != "", o.created_at, o.id)


def calculate(
    model: str,
    provider: str | None,
    usage: LlmUsage,
    *,
    at_ms: int,
    overrides: Iterable[Override] = (),
    strict: bool = True,
) -> Cost:
    """The cost of ``usage`` with the prices in force at ``at_ms``: the project's override, else the book.
    Raises UnknownModel, UnknownProvider or PriceUnavailable (all LookupError). ``strict``: usage the book
    entry has no price for is an error (PriceUnavailable) unless the book lists the model as free; AI events
    keep their original rule (such parts cost 0)."""
    chosen = choose_override(overrides, model, provider, at_ms)
    if chosen is not None:
        return _override_cost(chosen, provider, usage)
    return _book_cost(model, provider, usage, ms_to_datetime(at_ms), strict=strict)


def _override_cost(o: Override, provider: str | None, usage: LlmUsage) -> Cost:
    def part(rate: Decimal | None, count: int, what: str) -> Decimal:
        if count == 0:
            return Decimal(0)
        if rate is None:
            raise PriceUnavailable(o.model, f"the price override {o.id} has no {what} price")
        return rate * count / MILLION

    uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens
    audio = Decimal(0)
    if usage.audio_seconds:
        if o.audio_minute is None:
            raise PriceUnavailable(o.model, f"the price override {o.id} has no audio price")
        audio = o.audio_minute * usage.audio_seconds / 60
    return Cost(
        input=part(o.input, uncached, "input"),
        output=part(o.output, usage.output_tokens, "output"),
        cached=part(o.cache_read if o.cache_read is not None else o.input, usage.cached_tokens, "input"),
        cache_write=part(
            o.cache_write if o.cache_write is not None else o.input, usage.cache_write_tokens, "input"
        ),
        audio=audio,
        model=o.model,
        provider=o.provider or normalise_provider(provider),
        override_id=o.id,
    )


def find_model(model: str, provider: str | None) -> tuple[Any, ModelInfo]:
    """The book's (provider, model) for a model reference; the provider is inferred when absent."""
    provider_id = normalise_provider(provider) or None
    snapshot = data_snapshot.get_snapshot()
    try:
        return snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        pass
    if provider_id is not None and data_snapshot.find_provider_by_id(snapshot.providers, provider_id) is None:
        raise UnknownProvider(provider_id)
    # A few book ids are not matched by their own match rules (e.g. "ft:gpt-4o"): ListModels shows them,
    # so CalculateCost and RecordUsage accept them by id.
    wanted = model.strip().lower()
    for prov in snapshot.providers:
        if provider_id is None or prov.id == provider_id:
            for info in prov.models:
                if info.id.lower() == wanted:
                    return prov, info
    raise UnknownModel(model)


def _book_cost(model: str, provider: str | None, usage: LlmUsage, when: datetime, *, strict: bool) -> Cost:
    found_provider, info = find_model(model, provider)
    prices = info.get_prices(when)
    cached, writes = usage.cached_tokens, usage.cache_write_tokens
    uncached = usage.input_tokens - cached - writes
    stt, tts = usage.usage_type == "audio_stt", usage.usage_type == "audio_tts"

    def priced(*keys: str) -> bool:
        return any(getattr(prices, key, None) is not None for key in keys)

    free = not any(v is not None for k, v in prices.__dict__.items() if not k.startswith("_"))
    # Never bill 0 silently: usage the entry has no price for is an error naming the model (a model the
    # book lists with no prices at all is free).
    if strict and not free:
        if usage.input_tokens and not priced("input_mtok", *(("input_audio_mtok",) if stt else ())):
            raise PriceUnavailable(info.id, "the price book has no input token price")
        if usage.output_tokens and not priced("output_mtok", *(("output_audio_mtok",) if tts else ())):
            raise PriceUnavailable(info.id, "the price book has no output token price")
        if usage.audio_seconds and not priced("audio_hours"):
            raise PriceUnavailable(info.id, "the price book has no audio price")
    counts: dict[str, int | Decimal] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": cached,
        "cache_write_tokens": writes,
    }
    if stt:  # a transcription's uncached input is audio
        counts |= {
            "input_audio_tokens": uncached,
            "cache_audio_read_tokens": 0,
            "cache_audio_write_tokens": 0,
        }
    if tts:  # speech out is audio
        counts["output_audio_tokens"] = usage.output_tokens

    def calc(values: dict[str, int | Decimal]) -> Any:
        try:
            return info.calc_price(Usage(**values), found_provider, genai_request_timestamp=when)
        except ValueError as e:
            raise PriceUnavailable(info.id, f"the price book cannot price this usage ({e})") from None

    # Tokens and audio seconds are independent units (tiers depend on input tokens alone): the audio part is
    # what the audio seconds add to the same tokens' total (a provider's minimum billed duration included).
    tokens = calc(counts)
    full = calc({**counts, "audio_seconds": usage.audio_seconds}) if usage.audio_seconds else tokens
    resolved = tokens.model_price
    tiers_by = usage.input_tokens  # the tier threshold genai-prices applies to every unit

    def unit(key: str, count: int) -> Decimal:
        price = getattr(resolved, key, None)
        return Decimal(0) if price is None else calc_unit_price(price, count, tiers_by, 1_000_000)

    read, write = unit("cache_read_mtok", cached), unit("cache_write_mtok", writes)
    # Input takes every token-side charge that is not output or cache (a per-request fee, if any), so that
    # the parts add up to genai-prices' total exactly.
    return Cost(
        input=(tokens.total_price - tokens.output_price - read - write) * CENTS_PER_USD,
        output=tokens.output_price * CENTS_PER_USD,
        cached=read * CENTS_PER_USD,
        cache_write=write * CENTS_PER_USD,
        audio=(full.total_price - tokens.total_price) * CENTS_PER_USD,
        model=full.model.id,
        provider=full.provider.id,
    )


# The price list (ListModels) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """One entry of the price list: USD per million tokens and per minute of audio (``None`` = not priced)."""

    model: str
    provider: str
    name: str
    source: str  # book | override
    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    audio_minute: Decimal | None
    tiered: bool = False
    override_id: str | None = None
    effective_from: int | None = None
    in_force: bool = True


def _usd(value: Any) -> tuple[Decimal | None, bool]:
    if value is None:
        return None, False
    if isinstance(value, TieredPrices):
        return value.base, True
    return Decimal(value), False


def per_minute(per_hour: Decimal) -> Decimal:
    """An hourly price per minute: exact when it divides, else rounded half-even to 12 decimal places."""
    exact = per_hour / 60
    return exact if exact * 60 == per_hour else exact.quantize(Decimal("1e-12"), rounding=ROUND_HALF_EVEN)


def _rates(provider: str, info: ModelInfo, prices: ModelPrice) -> Rates:
    values = {
        key: _usd(getattr(prices, key, None))
        for key in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "audio_hours")
    }
    audio = values["audio_hours"][0]
    return Rates(
        model=info.id,
        provider=provider,
        name=info.name or info.id,
        source="book",
        input=values["input_mtok"][0],
        output=values["output_mtok"][0],
        cache_read=values["cache_read_mtok"][0],
        cache_write=values["cache_write_mtok"][0],
        audio_minute=None if audio is None else per_minute(audio),
        tiered=any(tiered for _, tiered in values.values()),
    )


@functools.cache
def _book() -> list[tuple[str, ModelInfo, Rates | None]]:
    """The bundled book by provider then model id, read once per process (it is static data, ≈2,300
    entries, slow to build on every listing). The entries of prices that never change are built here; those
    with prices bound to dates or hours of the day (``None``) by :func:`_timed`."""
    found: list[tuple[str, ModelInfo, Rates | None]] = []
    for prov in data_snapshot.get_snapshot().providers:
        for info in prov.models:
            timeless = isinstance(info.prices, ModelPrice) or all(p.constraint is None for p in info.prices)
            fixed = _rates(prov.id, info, info.get_prices(datetime.now(UTC))) if timeless else None
            found.append((prov.id, info, fixed))
    found.sort(key=lambda entry: (entry[0], entry[1].id))
    return found


@functools.lru_cache(maxsize=4)
def _timed(minute: int) -> dict[int, Rates]:
    """The book's time-bound entries (by position in :func:`_book`) as priced during one UTC minute: the
    book changes prices on whole minutes (dates, hours of the day), never within one."""
    at = datetime.fromtimestamp(minute * 60, UTC)
    return {
        i: _rates(p, info, info.get_prices(at)) for i, (p, info, fixed) in enumerate(_book()) if not fixed
    }


def book_rates(at: datetime, current: Iterable[Override] = ()) -> list[Rates]:
    """Every model of the bundled book with the prices in force at ``at``, by provider then model id; an
    entry that one of the ``current`` overrides replaces is marked not in force."""
    current = list(current)
    timed = _timed(int(at.timestamp()) // 60)
    found: list[Rates] = []
    for i, (provider, info, fixed) in enumerate(_book()):
        rates = fixed or timed[i]
        if any(
            o.provider in ("", provider) and (o.model == info.id.lower() or info.is_match(o.model))
            for o in current
        ):
            rates = dataclasses.replace(rates, in_force=False)
        found.append(rates)
    return found


def override_rates(o: Override, *, in_force: bool) -> Rates:
    def usd(cents: Decimal | None) -> Decimal | None:
        return None if cents is None else cents / CENTS_PER_USD

    return Rates(
        model=o.model,
        provider=o.provider,
        name=o.model,
        source="override",
        input=usd(o.input),
        output=usd(o.output),
        cache_read=usd(o.cache_read),
        cache_write=usd(o.cache_write),
        audio_minute=usd(o.audio_minute),
        override_id=o.id,
        effective_from=o.effective_from,
        in_force=in_force,
    )


def price_list(overrides: list[Override], at_ms: int, *, provider: str = "", search: str = "") -> list[Rates]:
    """The project's overrides then the book, filtered by provider (an override for every provider is
    listed under each) and by a case-insensitive substring of the model id or name; each entry says whether
    it prices its model at ``at_ms``."""
    prov, needle = normalise_provider(provider), search.strip().lower()

    def wanted(model: str, name: str) -> bool:
        return not needle or needle in model.lower() or needle in name.lower()

    listed = [
        override_rates(o, in_force=choose_override(overrides, o.model, o.provider, at_ms) is o)
        for o in sorted(overrides, key=lambda o: (o.model, o.provider, -o.effective_from, o.id))
        if (not prov or o.provider in ("", prov)) and wanted(o.model, o.model)
    ]
    current = [o for o in overrides if o.effective_from <= at_ms]
    book = [
        r
        for r in book_rates(ms_to_datetime(at_ms), current)
        if (not prov or r.provider == prov) and wanted(r.model, r.name)
    ]
    return listed + book
