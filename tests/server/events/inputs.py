"""Events for the events domain's tests, built as intake builds them (validated inputs, priced events)."""

from __future__ import annotations

from decimal import Decimal

from scrawn.server.clock import now_ms
from scrawn.server.events.intake import EventInput
from scrawn.server.events.types import PricedEvent
from scrawn.server.keys.types import Mode
from scrawn.server.pricing.pricer import Debit

MODE: Mode = "live"


def basic(
    user: str,
    key: str,
    *,
    amount: str = "1.5",
    tag: str | None = None,
    event_id: str | None = None,
    reported_at: int | None = None,
    content: str | None = None,
) -> EventInput:
    """A BASIC_USAGE event; ``content`` stands for what its fingerprint hashes (same content, same print)."""
    debit = Debit("tag", tag) if tag is not None else Debit("amount", amount)
    return EventInput(
        event_type="BASIC_USAGE",
        user_id=user,
        reported_at=reported_at if reported_at is not None else now_ms() // 1000,
        event_id=event_id,
        idempotency_key=key,
        metadata=None,
        fingerprint=content or f"{user}/{key}/{amount}/{tag}",
        basic_usage_type="RAW",
        debit=debit,
    )


def priced(project_id: str, inp: EventInput, mode: str = MODE) -> PricedEvent:
    """``inp`` (an amount event) priced as ingest prices it."""
    assert inp.debit is not None and inp.debit.kind == "amount" and inp.idempotency_key is not None
    amount = Decimal(inp.debit.value)
    return PricedEvent(project_id, mode, inp, inp.idempotency_key, amount, {}, {"amount": inp.debit.value})
