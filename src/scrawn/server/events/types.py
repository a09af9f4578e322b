"""The events domain's typed values: what ingest stores and answers, and events as stored. Rows of the
domain's tables leave its repositories only as these."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from scrawn.errors import ScrawnError
from scrawn.server.events.intake import EventInput


# The two values built per event on the batch path are named tuples: as immutable as frozen dataclasses, and
# about four times cheaper to build (a frozen dataclass sets each field through ``object.__setattr__``).
class PricedEvent(NamedTuple):
    project_id: str
    mode: str
    input: EventInput
    idempotency_key: str
    debit: Decimal  # the total; Σ components when the event has components
    components: dict[str, Decimal | None]  # AI events: by component; rounded to micro-units already
    pricing: dict[str, Any]
    micros: int | None = None  # ``debit`` in micro-units, when pricing had it at hand (else computed)


class Stored(NamedTuple):
    event_id: str
    idempotency_key: str
    ingested_at: int  # Unix ms
    duplicate: bool
    debit: Decimal  # what the stored event was charged


Outcome = Stored | ScrawnError


@dataclass(frozen=True)
class Billed:
    """An event stored already, found by its idempotency key: enough to answer a retry."""

    event_id: str
    fingerprint: str
    ingested_at: int  # Unix ms
    debit: Decimal


@dataclass(frozen=True)
class VoidableEvent:
    """The columns a void reads from the event it locks."""

    id: str
    idempotency_key: str
    user_id: str
    debit: Decimal
    ingested_at: int
    voided_at: int | None
    voided_by: str | None
    void_reason: str | None


@dataclass(frozen=True)
class EventRecord:
    """An ``events`` row, every column (listings, the CSV export, ``scrawn explain``)."""

    project_id: str
    mode: str
    id: str
    idempotency_key: str
    fingerprint: str
    event_type: str
    user_id: str
    basic_usage_type: str | None
    reported_at: int  # Unix seconds
    ingested_at: int  # Unix ms
    debit: Decimal
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    input_cache_tokens: int | None
    output_cache_tokens: int | None
    input_debit: Decimal | None
    output_debit: Decimal | None
    input_cache_debit: Decimal | None
    output_cache_debit: Decimal | None
    metadata: str | None
    name: str | None
    quantity: str | None
    product_ref: str | None
    pricing: str  # JSON
    voided_at: int | None
    voided_by: str | None
    void_reason: str | None
