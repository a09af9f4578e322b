"""What the LLM usage calls answer: :class:`UsageRecord`, :class:`UsagePage`, :class:`UsageSummary`,
:class:`UsageSeries`, :class:`CostBreakdown`, :class:`ModelList` — and how each is read from the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from scrawn._wallet_results import EPOCH, Listing, from_wire, time_of_ms

# -------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """A cost in minor units (cents): each part rounded once, half-even, to the micro-unit; ``total`` is
    their sum. ``model``/``provider``/``source`` (``book`` or ``override``) say which price priced it."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    audio: Decimal
    total: Decimal
    currency: str
    model: str
    provider: str
    source: str
    override_id: str | None
    price_book: str | None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One price list entry: USD per million tokens (``None``: not priced) and per minute of audio."""

    model: str
    provider: str | None
    name: str | None
    source: str
    input_per_million: Decimal | None
    output_per_million: Decimal | None
    cached_input_per_million: Decimal | None
    cache_write_per_million: Decimal | None
    audio_per_minute: Decimal | None
    tiered: bool
    override_id: str | None
    effective_from: datetime | None
    in_force: bool


@dataclass(frozen=True, slots=True)
class ModelList(Listing[ModelPrice]):
    """A page of the price list: the project's overrides first, then the book. Iterable."""

    models: list[ModelPrice]
    next_page_token: str | None
    price_book: str

    def _items(self) -> list[ModelPrice]:
        return self.models


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One usage record. ``duplicate`` is true when ``record_usage`` found its idempotency key already
    recorded (this is then the original record)."""

    id: str
    user_id: str | None
    context: str
    transaction_id: str | None
    reservation_id: str | None
    model: str
    provider: str
    usage_type: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    audio_seconds: Decimal
    cost: CostBreakdown | None
    description: str | None
    idempotency_key: str
    timestamp: datetime | None
    created_at: datetime | None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class UsageTotals:
    cost: Decimal
    records: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    audio_seconds: Decimal


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Totals over the filtered records, and the same per model and per context (dicts ordered most
    expensive first)."""

    totals: UsageTotals
    by_model: dict[str, UsageTotals]
    by_context: dict[str, UsageTotals]


@dataclass(frozen=True, slots=True)
class UsagePage(Listing[UsageRecord]):
    """``get_usage``: a page of records (newest first), or with ``summary=True`` their summary."""

    records: list[UsageRecord]
    next_page_token: str | None
    summary: UsageSummary | None = None

    def _items(self) -> list[UsageRecord]:
        return self.records


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """One hour, day or month: ``start`` is its local start (with the zone's offset then), ``start_time``
    and ``end_time`` (exclusive) the same instants in UTC."""

    start: datetime
    start_time: datetime
    end_time: datetime
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class UsageSeries(Listing[UsageBucket]):
    buckets: list[UsageBucket]
    bucket: str
    time_zone: str

    def _items(self) -> list[UsageBucket]:
        return self.buckets


def cost_of(message: Any) -> CostBreakdown:
    return from_wire(CostBreakdown, message)


def model_of(message: Any) -> ModelPrice:
    return from_wire(ModelPrice, message)


def record_of(message: Any, duplicate: bool = False) -> UsageRecord:
    cost = cost_of(message.cost) if message.HasField("cost") else None
    return from_wire(UsageRecord, message, cost=cost, duplicate=duplicate)


def totals_of(message: Any) -> UsageTotals:
    return from_wire(UsageTotals, message)


def summary_of(message: Any) -> UsageSummary:
    return UsageSummary(
        totals=totals_of(message.totals),
        by_model={g.key: totals_of(g.totals) for g in message.byModel},
        by_context={g.key: totals_of(g.totals) for g in message.byContext},
    )


def bucket_of(message: Any) -> UsageBucket:
    start_time = time_of_ms(message.startTime) or EPOCH
    end_time = time_of_ms(message.endTime) or start_time
    try:
        start = datetime.fromisoformat(message.start)
    except ValueError:
        start = start_time
    totals = totals_of(message.totals)
    return UsageBucket(start=start, start_time=start_time, end_time=end_time, totals=totals)
