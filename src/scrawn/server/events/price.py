"""Price validated events against a project's configuration: tags, named expressions, event prices,
model prices and the USD rate. One read (``load_pricing``) per batch, then pure (``price_event``).

An event the configuration cannot price yet (a missing name, an unknown model, no USD rate) raises
:class:`Unpriceable`: ingest keeps it in the quarantine instead of refusing it (docs/pricing-safety.md).
A malformed one (bad expression, negative result, division by zero) raises :class:`PriceFailed`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn._codes import PRICE_CALCULATION_FAILED
from scrawn.errors import InvalidArgumentError
from scrawn.money import MICROS_PER_UNIT, MoneyError, from_micros, to_micros
from scrawn.server.events.intake import AI_COMPONENTS, EventInput
from scrawn.server.events.types import PricedEvent
from scrawn.server.pricing import currency, models, overrides
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.expression import Variables
from scrawn.server.pricing.pricer import (
    MODEL_PRICE_MISSING,
    NO_USD_RATE,
    UNKNOWN_MODEL,
    Debit,
    PriceBook,
    PricingError,
    load_price_book,
)
from scrawn.server.projects import service as projects
from scrawn.server.projects.types import ProjectMoney

BOOK_PRICED = ("input", "output")
_BOOK_FIELD = {
    "input": "input",
    "output": "output",
    "inputCache": "input_cache",
    "outputCache": "output_cache",
}
MODEL_FIELD = "aiTokenUsage.model"


class PriceFailed(InvalidArgumentError):
    stream_code = PRICE_CALCULATION_FAILED


class Unpriceable(Exception):
    """A well-formed event that the project's configuration cannot price yet. ``reason_code`` is one of
    ``pricer.CONFIGURATION_REASONS``; ``field`` names the request field, ``reason`` says what is missing."""

    def __init__(self, field: str, reason: str, reason_code: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.reason_code = reason_code


@dataclass
class Pricing:
    """What a batch of events needs from the project's configuration, read once."""

    book: PriceBook = field(default_factory=PriceBook)
    event_prices: dict[str, catalog.NamedExpression] = field(default_factory=dict)
    model_overrides: list[models.Override] = field(default_factory=list)
    project: ProjectMoney | None = None  # read only when the USD book prices something
    # A basic event's tag or expression prices the same for every event of the batch: priced once.
    basic: dict[Debit, tuple[Decimal, int, dict[str, Any]]] = field(default_factory=dict)


def _debits(inp: EventInput) -> list[Debit]:
    if inp.ai is not None:
        return [d for d in inp.ai.debits.values() if d is not None]
    return [inp.debit] if inp.debit is not None else []


def _book_models(inputs: Sequence[EventInput]) -> set[str]:
    return {
        inp.ai.model
        for inp in inputs
        if inp.ai is not None and any(inp.ai.debits[c] is None for c in BOOK_PRICED)
    }


def needs_reading(inputs: Sequence[EventInput]) -> bool:
    """False when amounts alone price the batch: then no catalog read at all (the hot path)."""
    return (
        any(inp.typed is not None for inp in inputs)
        or any(d.kind != "amount" for inp in inputs for d in _debits(inp))
        or bool(_book_models(inputs))
    )


async def load_pricing(conn: AsyncConnection, project_id: str, inputs: Sequence[EventInput]) -> Pricing:
    pricing = Pricing()
    debits = [d for inp in inputs for d in _debits(inp)]
    types = {inp.typed.name for inp in inputs if inp.typed is not None}
    if types or any(d.kind != "amount" for d in debits):
        pricing.event_prices = await catalog.current_event_prices(conn, project_id, types)
        debits += [Debit("expr", p.text) for p in pricing.event_prices.values()]
        pricing.book = await load_price_book(conn, project_id, debits)
    # AI parts priced from the model price book: the project's overrides apply (docs/usage.md).
    book_models = _book_models(inputs)
    if book_models:
        pricing.model_overrides = await overrides.list_overrides(conn, project_id, book_models)
        pricing.project = await projects.load(conn, project_id)
    return pricing


def price_event(
    project_id: str, mode: str, inp: EventInput, pricing: Pricing, key: str | None = None
) -> PricedEvent:
    """``inp`` priced with ``pricing``, under ``key`` (default: its own idempotency key, else a new one).
    Raises :class:`Unpriceable` or :class:`PriceFailed`."""
    key = key or inp.idempotency_key or f"srv_{uuid.uuid4()}"
    debit = inp.debit
    if debit is not None and inp.ai is None and inp.typed is None:  # a basic event: most of ingest
        total, micros, how = _basic(debit, pricing)
        return PricedEvent(project_id, mode, inp, key, total, {}, how, micros)
    book = pricing.book
    components: dict[str, Decimal | None] = {}
    pricing_used: dict[str, Any] = {}
    try:
        if inp.typed is not None:
            price = pricing.event_prices.get(inp.typed.name)
            total, pricing_used = Decimal(0), {"eventType": inp.typed.name, "eventPrice": None}
            if price is not None:
                amount, how = book.price(
                    "type", Debit("expr", price.text), Variables(quantity=inp.typed.quantity)
                )
                total = _rounded("type", amount)
                pricing_used |= {"eventPrice": price.version, **how}
        else:
            assert inp.ai is not None
            ai = inp.ai
            variables = Variables(
                input_tokens=ai.input_tokens,
                output_tokens=ai.output_tokens,
                input_cache_tokens=ai.input_cache_tokens,
                output_cache_tokens=ai.output_cache_tokens,
            )
            from_book = _book_prices(inp, pricing.model_overrides)
            to_project = _conversion(pricing.project) if from_book is not None else currency.IDENTITY
            total = Decimal(0)
            for component in AI_COMPONENTS:
                debit = ai.debits[component]
                field_name = f"aiTokenUsage.{component}Debit"
                if debit is not None:
                    amount, how = book.price(field_name, debit, variables)
                elif from_book is not None and (component in BOOK_PRICED or _all_from_book(inp)):
                    amount = to_project.apply(getattr(from_book, _BOOK_FIELD[component]))
                    how = from_book.pricing() | to_project.recorded
                else:
                    amount, how = Decimal(0), {"amount": "0"}  # an absent cache debit prices that part at 0
                components[component] = _rounded(field_name, amount)
                pricing_used[component] = how
                total += components[component] or 0
    except PricingError as e:
        if e.reason_code is not None:
            raise Unpriceable(e.field, e.message, e.reason_code) from None
        raise PriceFailed(f"Event pricing failed: {e.field}: {e.message}", field=e.field) from None
    return PricedEvent(project_id, mode, inp, key, total, components, pricing_used)


def _basic(debit: Debit, pricing: Pricing) -> tuple[Decimal, int, dict[str, Any]]:
    """A basic event's debit: (total, in micro-units, how it was priced). A whole amount is its own price;
    a tag or expression is priced once per batch (the result depends on nothing but the catalog)."""
    value = debit.value
    if debit.kind == "amount" and value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
        return Decimal(value), int(value) * MICROS_PER_UNIT, {"amount": value}  # Decimal(value) is exact
    known = pricing.basic.get(debit)
    if known is None:
        try:
            amount, how = pricing.book.price(f"basicUsage.{debit.kind}", debit, Variables())
            micros = _micros("basicUsage", amount)
        except PricingError as e:
            if e.reason_code is not None:
                raise Unpriceable(e.field, e.message, e.reason_code) from None
            raise PriceFailed(f"Event pricing failed: {e.field}: {e.message}", field=e.field) from None
        known = pricing.basic[debit] = (from_micros(micros), micros, how)
    return known


def _all_from_book(inp: EventInput) -> bool:
    """No input or output debit at all: every part, cache included, comes from the price book."""
    assert inp.ai is not None
    return inp.ai.debits["input"] is None and inp.ai.debits["output"] is None


def _book_prices(
    inp: EventInput, model_overrides: Sequence[models.Override] = ()
) -> models.TokenPrice | None:
    """The price book's prices for an AI event that leaves its input or output debit out."""
    ai = inp.ai
    assert ai is not None
    if not any(ai.debits[c] is None for c in BOOK_PRICED):
        return None
    try:
        return models.price_tokens(
            ai.model,
            ai.provider,
            input_tokens=ai.input_tokens,
            output_tokens=ai.output_tokens,
            input_cache_tokens=ai.input_cache_tokens,
            output_cache_tokens=ai.output_cache_tokens,
            at=datetime.fromtimestamp(inp.reported_at, tz=UTC),
            overrides=model_overrides,
        )
    except models.PriceUnavailable as e:  # an override or book entry without a rate this usage needs
        raise Unpriceable(MODEL_FIELD, str(e), MODEL_PRICE_MISSING) from None
    except models.UnknownModel as e:
        raise Unpriceable(MODEL_FIELD, str(e), UNKNOWN_MODEL) from None


def _conversion(project: ProjectMoney | None) -> currency.Conversion:
    """US cents (book and overrides) → the project's money; the rate used is recorded per component."""
    assert project is not None  # loaded whenever an event leaves a part to the book
    try:
        return project.conversion()
    except currency.NoUsdRate as e:
        raise Unpriceable(MODEL_FIELD, e.message, NO_USD_RATE) from None


def _rounded(field_name: str, amount: Decimal) -> Decimal:
    """The one rounding rule: exact until written, then half-even to the micro-unit."""
    return from_micros(_micros(field_name, amount))


def _micros(field_name: str, amount: Decimal) -> int:
    try:
        return to_micros(amount)
    except MoneyError as e:
        raise PricingError(field_name, f"amount {e}") from None
