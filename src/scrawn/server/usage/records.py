"""``RecordUsage`` and ``CalculateCost``: validate a call's LLM usage, price it with the prices in force at
its time (the project's override, else the bundled book), and record it once per idempotency key.

A ``customer`` record belongs to a confirmed reservation: its ``transactionId`` is the ``capture`` ledger
entry ConfirmReservation returned, for the same user, project and mode. A ``system`` record stands alone
(the product's own usage). Records do not move money: the reservation's capture already did.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import AlreadyExistsError, NotFoundError, ValidationError
from scrawn.money import MoneyError, format_amount, from_micros, parse_decimal, to_micros
from scrawn.server.db.engine import now_ms
from scrawn.server.ledger import repository as ledger
from scrawn.server.limits import MAX_USER_ID
from scrawn.server.pricing import currency, models, overrides
from scrawn.server.projects import service as projects
from scrawn.server.projects.types import ProjectMoney
from scrawn.server.usage import repository

CONTEXTS = ("customer", "system")
MAX_TOKENS = 10**12
MAX_AUDIO_SECONDS = Decimal(10_000_000)
MAX_KEY, MAX_DESCRIPTION = 255, 255
FUTURE_SKEW_MS = 86_400_000
PARTS = ("input", "output", "cached", "cache_write", "audio")  # a cost's parts, stored as ``{part}_cost``
PART_FIELDS = {
    "input": "inputTokens",
    "output": "outputTokens",
    "cached": "cachedTokens",
    "cache_write": "cacheWriteTokens",
    "audio": "audioSeconds",
}


CONTEXT = "Usage validation failed"


def fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


@dataclass(frozen=True)
class PricedCall:
    """What to price: the model, provider and usage, at a time (Unix ms)."""

    model: str
    provider: str
    usage: models.LlmUsage
    at_ms: int


@dataclass(frozen=True)
class RoundedCost:
    """A cost with each part rounded once, half-even to the micro-unit (DESIGN §4); total = Σ parts."""

    input: Decimal
    output: Decimal
    cached: Decimal
    cache_write: Decimal
    audio: Decimal
    model: str
    provider: str
    source: str
    override_id: str | None
    price_book: str
    currency: str = "USD"
    conversion: tuple[tuple[str, str], ...] = ()  # what priced it into the project's currency, if not cents

    @property
    def total(self) -> Decimal:
        return self.input + self.output + self.cached + self.cache_write + self.audio


def check_model(value: str, field: str = "model") -> str:
    if not value or not value.strip():
        raise fail(field, "must be a non-empty string")
    if len(value) > overrides.MAX_MODEL or any(ord(c) < 32 for c in value):
        raise fail(field, f"must be at most {overrides.MAX_MODEL} characters, without control characters")
    return models.normalise_model(value)


def check_provider(value: str) -> str:
    if len(value) > overrides.MAX_PROVIDER or any(ord(c) <= 32 for c in value.strip()):
        raise fail("provider", f"must be at most {overrides.MAX_PROVIDER} characters, without spaces")
    return models.normalise_provider(value)


def check_usage_type(value: str, field: str = "usageType") -> str:
    usage_type = value or "text"
    if usage_type not in models.USAGE_TYPES:
        raise fail(field, f"must be one of {', '.join(models.USAGE_TYPES)}")
    return usage_type


def check_tokens(field: str, value: int) -> int:
    if value < 0:
        raise fail(field, "must not be negative")
    if value > MAX_TOKENS:
        raise fail(field, f"must be at most {MAX_TOKENS}")
    return value


def check_audio_seconds(value: str) -> Decimal:
    if not value:
        return Decimal(0)
    try:
        seconds = parse_decimal(value)
    except MoneyError as e:
        raise fail("audioSeconds", str(e)) from None
    if seconds < 0:
        raise fail("audioSeconds", "must not be negative")
    if seconds > MAX_AUDIO_SECONDS:
        raise fail("audioSeconds", f"must be at most {MAX_AUDIO_SECONDS}")
    if seconds != seconds.quantize(Decimal("0.001")):
        raise fail("audioSeconds", "must have at most 3 decimal places (milliseconds)")
    return seconds.normalize() if seconds else Decimal(0)


def check_timestamp(value: int) -> int:
    """Unix ms; 0 = now; at most a day ahead."""
    now = now_ms()
    if value == 0:
        return now
    if value < 0:
        raise fail("timestamp", "must be Unix milliseconds, not negative")
    if value > now + FUTURE_SKEW_MS:
        raise fail("timestamp", "is more than a day in the future (Unix milliseconds)")
    return value


def check_call(req: Any) -> PricedCall:
    """The pricing inputs of a CalculateCostRequest or RecordUsageRequest."""
    model = check_model(req.model)
    provider = check_provider(req.provider)
    usage_type = check_usage_type(req.usageType)
    tokens = {
        name: check_tokens(name, getattr(req, name))
        for name in ("inputTokens", "outputTokens", "cachedTokens", "cacheWriteTokens")
    }
    seconds = check_audio_seconds(req.audioSeconds)
    if tokens["cachedTokens"] + tokens["cacheWriteTokens"] > tokens["inputTokens"]:
        field = "cachedTokens" if tokens["cachedTokens"] else "cacheWriteTokens"
        raise fail(field, "must not exceed inputTokens (inputTokens counts cached and cache-write tokens)")
    if usage_type not in models.AUDIO_TYPES and seconds:
        raise fail("audioSeconds", "is only for the usage types audio_stt and audio_tts")
    if usage_type == "embedding" and tokens["outputTokens"]:
        raise fail("outputTokens", "must be 0 for embedding usage")
    if not seconds and not any(tokens.values()):
        raise fail("inputTokens", "the usage is empty: give token counts or audioSeconds")
    usage = models.LlmUsage(
        input_tokens=tokens["inputTokens"],
        output_tokens=tokens["outputTokens"],
        cached_tokens=tokens["cachedTokens"],
        cache_write_tokens=tokens["cacheWriteTokens"],
        audio_seconds=seconds,
        usage_type=usage_type,
    )
    return PricedCall(model, provider, usage, check_timestamp(req.timestamp))


def price(
    call: PricedCall, project_overrides: list[models.Override], project: ProjectMoney | None = None
) -> RoundedCost:
    """The call's cost in the project's money: USD cents (book or override) × its rate, exact, then each
    part rounded once. Without ``project``: US cents."""
    try:
        cost = models.calculate(
            call.model, call.provider, call.usage, at_ms=call.at_ms, overrides=project_overrides
        )
    except models.UnknownProvider as e:
        raise fail("provider", str(e)) from None
    except models.UnknownModel as e:  # PriceUnavailable included
        raise fail("model", str(e)) from None
    to_project = currency.IDENTITY if project is None else project.conversion()  # after INVALID_ARGUMENT
    parts: dict[str, Decimal] = {}
    for part in PARTS:
        try:
            parts[part] = from_micros(to_micros(to_project.apply(getattr(cost, part))))
        except MoneyError:
            raise fail(PART_FIELDS[part], "the cost is too large to record") from None
    rounded = RoundedCost(
        **parts,
        model=cost.model,
        provider=cost.provider,
        source=cost.source,
        override_id=cost.override_id,
        price_book=models.SOURCE,
        currency=to_project.recorded.get("currency", currency.USD),
        conversion=tuple(sorted(to_project.recorded.items())),
    )
    try:
        to_micros(rounded.total)
    except MoneyError:
        raise fail("inputTokens", "the cost is too large to record") from None
    return rounded


async def calculate(conn: AsyncConnection, project_id: str, call: PricedCall) -> RoundedCost:
    project = await projects.load(conn, project_id)
    return price(call, await overrides.list_overrides(conn, project_id, [call.model]), project)


# RecordUsage -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordInput:
    call: PricedCall
    user_id: str
    context: str
    transaction_id: str | None
    description: str | None
    idempotency_key: str
    fingerprint: str


def check_record(req: Any) -> RecordInput:
    context = req.context
    if context not in CONTEXTS:
        raise fail("context", "must be customer or system")
    user = req.userId
    if context == "customer" and (not user or not user.strip()):
        raise fail("userId", "must be a non-empty string (the reservation's user)")
    if len(user) > MAX_USER_ID or "\x00" in user:
        raise fail("userId", f"must be at most {MAX_USER_ID} characters, without NUL")
    transaction_id: str | None = None
    if context == "customer":
        if not req.transactionId:
            raise fail("transactionId", "is required for customer usage (ConfirmReservation's transactionId)")
        try:
            transaction_id = str(uuid.UUID(req.transactionId))
        except ValueError:
            raise fail("transactionId", "must be a UUID") from None
    elif req.transactionId:
        raise fail("transactionId", "is only for customer usage; system usage stands alone")
    key = req.idempotencyKey
    if not key or not key.strip():
        raise fail("idempotencyKey", "is required so that a retry is never recorded twice")
    if len(key) > MAX_KEY or "\x00" in key:
        raise fail("idempotencyKey", f"must be at most {MAX_KEY} characters, without NUL")
    if len(req.description) > MAX_DESCRIPTION or "\x00" in req.description:
        raise fail("description", f"must be at most {MAX_DESCRIPTION} characters, without NUL")
    call = check_call(req)
    content = {
        "context": context,
        "userId": user,
        "transactionId": transaction_id,
        "model": call.model,
        "provider": call.provider,
        "usage": {k: str(v) for k, v in asdict(call.usage).items()},
        "description": req.description,
        "timestamp": req.timestamp,  # as sent: 0 (now) stays 0 on a retry
    }
    print_ = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return RecordInput(call, user, context, transaction_id, req.description or None, key, print_)


def _same_or_conflict(row: Any, inp: RecordInput) -> Any:
    if row.fingerprint != inp.fingerprint:
        raise AlreadyExistsError("idempotencyKey: already used for different usage", field="idempotencyKey")
    return row


async def record(conn: AsyncConnection, project_id: str, mode: str, inp: RecordInput) -> tuple[Any, bool]:
    """Price and store one record (in the caller's write transaction). Returns (row, duplicate)."""
    existing = await repository.by_key(conn, project_id, mode, inp.idempotency_key)
    if existing is not None:
        return _same_or_conflict(existing, inp), True
    cost = await calculate(conn, project_id, inp.call)  # an unpriceable call is INVALID_ARGUMENT first
    reservation_id = None
    if inp.transaction_id is not None:
        capture = await ledger.capture(conn, project_id, mode, inp.transaction_id, inp.user_id)
        if capture is None:
            raise NotFoundError(
                f"transactionId: no confirmed reservation transaction {inp.transaction_id} "
                f"for user {inp.user_id!r}",
                field="transactionId",
            )
        reservation_id = capture.reservation_id
    usage = inp.call.usage
    record_id = str(uuid.uuid4())
    pricing = {
        "source": cost.source,
        "model": cost.model,
        "provider": cost.provider,
        "priceBook": cost.price_book,
        "overrideId": cost.override_id,
        "pricedAt": inp.call.at_ms,
        **dict(cost.conversion),  # usdRate and currency (and amountUnit) when converted from US cents
    }
    inserted = await repository.insert_record(
        conn,
        dict(
            project_id=project_id,
            mode=mode,
            id=record_id,
            idempotency_key=inp.idempotency_key,
            fingerprint=inp.fingerprint,
            user_id=inp.user_id,
            context=inp.context,
            transaction_id=inp.transaction_id,
            reservation_id=reservation_id,
            model=inp.call.model,
            provider=cost.provider,
            # usage_type and the token counts under their own names; audio in ms
            **{k: v for k, v in asdict(usage).items() if k != "audio_seconds"},
            audio_ms=int(usage.audio_seconds * 1000),
            **{f"{part}_cost": getattr(cost, part) for part in PARTS},
            cost=cost.total,
            pricing=json.dumps(pricing, sort_keys=True),
            description=inp.description,
            occurred_at=inp.call.at_ms,
            created_at=now_ms(),
        ),
    )
    if not inserted:  # the same key raced in from another transaction (PostgreSQL)
        raced = await repository.by_key(conn, project_id, mode, inp.idempotency_key)
        return _same_or_conflict(raced, inp), True
    row = await repository.by_key(conn, project_id, mode, inp.idempotency_key)
    return row, False


def audio_seconds(ms: int) -> str:
    return format_amount(Decimal(ms).scaleb(-3))


def cost_of(row: Any) -> RoundedCost:
    pricing = json.loads(row.pricing)
    return RoundedCost(
        **{part: getattr(row, f"{part}_cost") for part in PARTS},
        model=pricing["model"],
        provider=pricing["provider"],
        source=pricing["source"],
        override_id=pricing.get("overrideId"),
        price_book=pricing.get("priceBook", ""),
        currency=pricing.get("currency", currency.USD),
        conversion=tuple(
            sorted((k, pricing[k]) for k in ("currency", "usdRate", "amountUnit") if k in pricing)
        ),
    )
