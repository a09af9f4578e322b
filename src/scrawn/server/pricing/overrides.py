"""Per-project model price overrides (DESIGN §6): custom models and negotiated rates, each in force from its
``effective_from`` time. Rates arrive as USD decimal strings (per million tokens, per minute of audio) and
are stored exactly as minor units (US cents) through the one money column type."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, ValidationError
from scrawn.money import MoneyError, format_amount, parse_decimal, to_micros
from scrawn.server.db.engine import now_ms
from scrawn.server.pricing import repository
from scrawn.server.pricing.models import (
    CENTS_PER_USD,
    Override,
    datetime_to_ms,
    ms_to_datetime,
    normalise_model,
    normalise_provider,
)

MAX_MODEL, MAX_PROVIDER = 255, 64
MAX_RATE_USD = Decimal(1_000_000)
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
# JSON API and wire field → the attribute of an Override (and of a price list entry, models.Rates)
RATE_FIELDS = {
    "inputPerMillion": "input",
    "outputPerMillion": "output",
    "cachedInputPerMillion": "cache_read",
    "cacheWritePerMillion": "cache_write",
    "audioPerMinute": "audio_minute",
}


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Model price validation failed")


def check_model(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(field, "must be a non-empty string")
    model = normalise_model(value)
    if len(model) > MAX_MODEL or any(ord(c) < 32 for c in model):
        raise _fail(field, f"must be at most {MAX_MODEL} characters, without control characters")
    return model


def check_provider(field: str, value: Any) -> str:
    """ "" (every provider) when absent."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    provider = normalise_provider(value)
    if len(provider) > MAX_PROVIDER or any(ord(c) <= 32 for c in provider):
        raise _fail(field, f"must be at most {MAX_PROVIDER} characters, without spaces or control characters")
    return provider


def check_rate(field: str, value: Any) -> Decimal | None:
    """A USD decimal string (or JSON number) ≥ 0 with at most 8 decimal places → cents; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(field, "must be a decimal string in USD")
    try:
        usd = parse_decimal(str(value))
    except MoneyError as e:
        raise _fail(field, str(e)) from None
    if usd < 0:
        raise _fail(field, "must not be negative")
    if usd > MAX_RATE_USD:
        raise _fail(field, f"must be at most {MAX_RATE_USD} USD")
    cents = usd * CENTS_PER_USD
    if Decimal(to_micros(cents)).scaleb(-6) != cents:
        raise _fail(field, "must have at most 8 decimal places (USD)")
    return cents


def check_time(field: str, value: Any) -> int:
    """ISO 8601 with a UTC offset (``2025-01-01T00:00:00Z``) or Unix milliseconds → Unix ms; now when
    absent."""
    if value is None or value == "":
        return now_ms()
    if isinstance(value, bool):
        raise _fail(field, "must be an ISO 8601 time with an offset or Unix milliseconds")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _fail(field, "must be an ISO 8601 time with an offset or Unix milliseconds") from None
        if when.tzinfo is None:
            raise _fail(field, "must include a UTC offset (e.g. 2025-01-01T00:00:00Z)")
        ms = datetime_to_ms(when)
    else:
        raise _fail(field, "must be an ISO 8601 time with an offset or Unix milliseconds")
    if not 0 <= ms <= MAX_TIME_MS:
        raise _fail(field, "must be between 1970 and 9999")
    return ms


def check_rates(body: dict[str, Any]) -> dict[str, Decimal | None]:
    rates = {attr: check_rate(name, body.get(name)) for name, attr in RATE_FIELDS.items()}
    if all(v is None for v in rates.values()):
        raise _fail("inputPerMillion", "give at least one price (per million tokens or per minute of audio)")
    return rates


async def list_overrides(
    conn: AsyncConnection, project_id: str, models: Iterable[str] | None = None
) -> list[Override]:
    """The project's live (not deleted) overrides, for ``models`` (normalised names) or all."""
    wanted = None
    if models is not None:
        wanted = sorted({normalise_model(m) for m in models})
        if not wanted:
            return []
    return await repository.live_overrides(conn, project_id, wanted)


async def put_override(
    conn: AsyncConnection,
    project_id: str,
    *,
    model: str,
    provider: str,
    effective_from: int,
    rates: dict[str, Decimal | None],
    by: str | None = None,
) -> tuple[Override, bool]:
    """Create an override, made by ``by`` (API key id or "cli"); one for the same model, provider and time
    replaces it. Returns (it, created)."""
    now = now_ms()
    replaced = await repository.retire_override(conn, project_id, model, provider, effective_from, now, by)
    override = Override(
        id=str(uuid.uuid4()),
        model=model,
        provider=provider,
        effective_from=effective_from,
        **{attr: rates.get(attr) for attr in RATE_FIELDS.values()},
        created_at=now,
        changed_by=by,
    )
    return await repository.insert_override(conn, project_id, override), not replaced


async def delete_override(
    conn: AsyncConnection, project_id: str, override_id: str, *, by: str | None = None
) -> None:
    """Soft delete: usage already priced by it keeps its cost and names it; nothing new is priced by it."""
    try:
        override_id = str(uuid.UUID(override_id))
    except ValueError:
        raise _fail("id", "must be a UUID") from None
    if not await repository.delete_override(conn, project_id, override_id, now_ms(), by):
        raise NotFoundError(f"id: model price override not found: {override_id}", field="id")


def usd(cents: Decimal | None) -> str | None:
    return None if cents is None else format_amount(cents / CENTS_PER_USD)


def override_json(o: Override) -> dict[str, Any]:
    return {
        "id": o.id,
        "model": o.model,
        "provider": o.provider,
        "effectiveFrom": ms_to_datetime(o.effective_from).isoformat().replace("+00:00", "Z"),
        "effectiveFromMs": o.effective_from,
        **{name: usd(getattr(o, attr)) for name, attr in RATE_FIELDS.items()},
        "currency": "USD",
        "createdAt": o.created_at,
    }
