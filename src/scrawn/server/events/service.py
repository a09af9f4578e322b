"""Ingest: price validated events against the project's catalog, then hand them to group commit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from scrawn.errors import InvalidArgumentError, ScrawnError
from scrawn.money import MoneyError, from_micros, to_micros
from scrawn.server.db.engine import Database
from scrawn.server.events import late
from scrawn.server.events.committer import GroupCommitter
from scrawn.server.events.intake import AI_COMPONENTS, PRICE_CALCULATION_FAILED, EventInput
from scrawn.server.events.store import Outcome, PricedEvent
from scrawn.server.keys.service import Caller
from scrawn.server.pricing import catalog, currency, models, overrides
from scrawn.server.pricing.expression import Variables
from scrawn.server.pricing.pricer import Debit, PriceBook, PricingError, load_price_book


class PriceFailed(InvalidArgumentError):
    stream_code = PRICE_CALCULATION_FAILED


class RateMissing(currency.NoUsdRate):
    """FAILED_PRECONDITION on unary calls; a stream reports it as a pricing failure."""

    stream_code = PRICE_CALCULATION_FAILED


class EventService:
    def __init__(self, db: Database, committer: GroupCommitter) -> None:
        self._db = db
        self._committer = committer

    async def ingest(
        self, caller: Caller, inputs: Sequence[EventInput], *, window_checked: bool = False
    ) -> list[Outcome]:
        """Price and store ``inputs``; one outcome each, in order. Durable when this returns."""
        if not window_checked and late.any_old(inputs):  # rare: the project's late-event window applies
            return await late.without_late(
                self._db, caller, inputs, lambda rest: self.ingest(caller, rest, window_checked=True)
            )
        debits = [d for inp in inputs for d in _debits(inp)]
        types = {inp.typed.name for inp in inputs if inp.typed is not None}
        book, event_prices = PriceBook(), {}
        if types or any(d.kind != "amount" for d in debits):  # amounts alone need no catalog read
            async with self._db.read() as conn:
                event_prices = await catalog.current_event_prices(conn, caller.project_id, types)
                debits += [Debit("expr", p.text) for p in event_prices.values()]
                book = await load_price_book(conn, caller.project_id, debits)
        # AI parts priced from the model price book: the project's overrides apply (docs/usage.md).
        book_models = {
            inp.ai.model
            for inp in inputs
            if inp.ai is not None and any(inp.ai.debits[c] is None for c in BOOK_PRICED)
        }
        model_overrides: list[models.Override] = []
        project: currency.ProjectMoney | None = None  # read only when the USD book prices something
        if book_models:
            async with self._db.read() as conn:
                model_overrides = await overrides.list_overrides(conn, caller.project_id, book_models)
                project = await currency.load(conn, caller.project_id)
        outcomes: list[Outcome | None] = [None] * len(inputs)
        priced: list[PricedEvent] = []
        slots: list[int] = []
        for i, inp in enumerate(inputs):
            try:
                priced.append(_price(caller, book, event_prices, inp, model_overrides, project))
                slots.append(i)
            except ScrawnError as e:
                outcomes[i] = e
        if priced:
            for slot, outcome in zip(slots, await self._committer.submit(priced), strict=True):
                outcomes[slot] = outcome
        return [o for o in outcomes if o is not None]


def _debits(inp: EventInput) -> list[Debit]:
    if inp.ai is not None:
        return [d for d in inp.ai.debits.values() if d is not None]
    return [inp.debit] if inp.debit is not None else []


def _price(
    caller: Caller,
    book: PriceBook,
    event_prices: dict[str, catalog.NamedExpression],
    inp: EventInput,
    model_overrides: Sequence[models.Override] = (),
    project: currency.ProjectMoney | None = None,
) -> PricedEvent:
    key = inp.idempotency_key or f"srv_{uuid.uuid4()}"
    components: dict[str, Decimal | None] = {}
    pricing: dict[str, Any] = {}
    try:
        if inp.typed is not None:
            price = event_prices.get(inp.typed.name)
            total, pricing = Decimal(0), {"eventType": inp.typed.name, "eventPrice": None}
            if price is not None:
                amount, how = book.price(
                    "type", Debit("expr", price.text), Variables(quantity=inp.typed.quantity)
                )
                total = _rounded("type", amount)
                pricing |= {"eventPrice": price.version, **how}
        elif inp.ai is None:
            assert inp.debit is not None
            amount, pricing = book.price(f"basicUsage.{inp.debit.kind}", inp.debit, Variables())
            total = _rounded("basicUsage", amount)
        else:
            ai = inp.ai
            variables = Variables(
                input_tokens=ai.input_tokens,
                output_tokens=ai.output_tokens,
                input_cache_tokens=ai.input_cache_tokens,
                output_cache_tokens=ai.output_cache_tokens,
            )
            from_book = _book_prices(inp, model_overrides)
            to_project = _conversion(project) if from_book is not None else currency.IDENTITY
            total = Decimal(0)
            for component in AI_COMPONENTS:
                debit = ai.debits[component]
                field = f"aiTokenUsage.{component}Debit"
                if debit is not None:
                    amount, how = book.price(field, debit, variables)
                elif from_book is not None and (component in BOOK_PRICED or _all_from_book(inp)):
                    amount = to_project.apply(getattr(from_book, _BOOK_FIELD[component]))
                    how = from_book.pricing() | to_project.recorded
                else:
                    amount, how = Decimal(0), {"amount": "0"}  # an absent cache debit prices that part at 0
                components[component] = _rounded(field, amount)
                pricing[component] = how
                total += components[component] or 0
    except PricingError as e:
        raise PriceFailed(f"Event pricing failed: {e.field}: {e.message}", field=e.field) from None
    return PricedEvent(caller.project_id, caller.mode, inp, key, total, components, pricing)


BOOK_PRICED = ("input", "output")
_BOOK_FIELD = {
    "input": "input",
    "output": "output",
    "inputCache": "input_cache",
    "outputCache": "output_cache",
}


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
    except models.UnknownModel as e:
        raise PriceFailed(
            f"Event pricing failed: aiTokenUsage.model: {e}", field="aiTokenUsage.model"
        ) from None


def _conversion(project: currency.ProjectMoney | None) -> currency.Conversion:
    """US cents (book and overrides) → the project's money; the rate used is recorded per component."""
    assert project is not None  # loaded whenever an event leaves a part to the book
    try:
        return project.conversion()
    except currency.NoUsdRate:
        raise RateMissing(project.currency) from None


def _rounded(field: str, amount: Decimal) -> Decimal:
    """The one rounding rule: exact until written, then half-even to the micro-unit."""
    try:
        return from_micros(to_micros(amount))
    except MoneyError as e:
        raise PricingError(field, f"amount {e}") from None
