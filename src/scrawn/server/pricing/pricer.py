"""Price a debit (an amount, a tag or an expression) against a project's catalog, recording what
priced it. Exact Decimal throughout; the caller rounds once to micro-units when it writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.pricing import repository as catalog
from scrawn.server.pricing.expression import (
    ExpressionError,
    Node,
    UnknownExpressionError,
    UnknownTagError,
    Variables,
    evaluate,
    parse,
    referenced_expressions,
    referenced_tags,
)
from scrawn.server.pricing.types import NamedExpression, Tag

DebitKind = Literal["amount", "tag", "expr"]

# Why a well-formed event cannot be priced by the project's configuration (PricingError.reason_code):
# such an event is kept in the quarantine and priced again later (docs/pricing-safety.md#quarantine).
TAG_NOT_FOUND = "tag_not_found"
EXPRESSION_NOT_FOUND = "expression_not_found"
UNKNOWN_MODEL = "unknown_model"
NO_USD_RATE = "no_usd_rate"
MODEL_PRICE_MISSING = "model_price_missing"  # the entry pricing a model has no rate for part of the usage
CONFIGURATION_REASONS = (TAG_NOT_FOUND, EXPRESSION_NOT_FOUND, UNKNOWN_MODEL, MODEL_PRICE_MISSING, NO_USD_RATE)


@dataclass(frozen=True)
class Debit:
    """What the client asked to be charged: an amount in minor units, a tag, or expression text."""

    kind: DebitKind
    value: str  # a decimal string for amounts

    def canonical(self) -> list[str]:
        return [self.kind, self.value]


class PricingError(Exception):
    """A debit that cannot be priced; ``field`` names the request field. ``reason_code`` is set (one of
    CONFIGURATION_REASONS) when the project's configuration is at fault, not the event: a missing name."""

    def __init__(self, field: str, message: str, reason_code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason_code = reason_code


@dataclass
class PriceBook:
    """The catalog entries some debits need, loaded once per batch (one read transaction)."""

    tags: dict[str, Tag] = field(default_factory=dict)
    expressions: dict[str, NamedExpression] = field(default_factory=dict)
    parsed: dict[str, Node] = field(default_factory=dict)  # named expressions, parsed
    texts: dict[str, Node | ExpressionError] = field(default_factory=dict)  # inline expression texts

    def price(self, field_name: str, debit: Debit, variables: Variables) -> tuple[Decimal, dict[str, Any]]:
        if debit.kind == "amount":
            return Decimal(debit.value), {"amount": debit.value}
        if debit.kind == "tag":
            tag = self.tags.get(debit.value)
            if tag is None:
                raise PricingError(field_name, f"Tag not found: {debit.value}", TAG_NOT_FOUND)
            return tag.price, {"tag": tag.key, "version": tag.version, "price": str(tag.price)}
        node = self.texts.get(debit.value)
        if node is None:  # pragma: no cover - load() parses every text it is given
            raise PricingError(field_name, "expression was not loaded")
        if isinstance(node, ExpressionError):
            raise PricingError(field_name, node.message)
        try:
            amount = evaluate(
                node,
                tags={k: t.price for k, t in self.tags.items()},
                expressions=self.parsed,
                variables=variables,
            )
        except UnknownTagError as e:
            raise PricingError(field_name, e.message, TAG_NOT_FOUND) from None
        except UnknownExpressionError as e:
            raise PricingError(field_name, e.message, EXPRESSION_NOT_FOUND) from None
        except ExpressionError as e:
            raise PricingError(field_name, e.message) from None
        used_tags = {k: t.version for k, t in self.tags.items() if k in _all_tags(node, self.parsed)}
        used_exprs = {k: e.version for k, e in self.expressions.items() if k in _all_exprs(node, self.parsed)}
        return amount, {"expr": debit.value, "tags": used_tags, "expressions": used_exprs}


async def load_price_book(conn: AsyncConnection, project_id: str, debits: Iterable[Debit]) -> PriceBook:
    """Load every tag and named expression the debits reference, following ``expr()`` transitively."""
    book = PriceBook()
    tag_names: set[str] = set()
    pending: set[str] = set()
    for debit in debits:
        if debit.kind == "tag":
            tag_names.add(debit.value)
        elif debit.kind == "expr" and debit.value not in book.texts:
            try:
                node = parse(debit.value)
            except ExpressionError as e:
                book.texts[debit.value] = e
                continue
            book.texts[debit.value] = node
            tag_names |= referenced_tags(node)
            pending |= referenced_expressions(node)
    while pending:
        found = {
            e.name: e for e in await catalog.current_named(conn, catalog.EXPRESSIONS, project_id, pending)
        }
        book.expressions.update(found)
        pending = set()
        for name, named in found.items():
            try:
                node = parse(named.text)
            except ExpressionError:  # stored text is validated on write; treat as missing if not
                continue
            book.parsed[name] = node
            tag_names |= referenced_tags(node)
            pending |= referenced_expressions(node) - book.expressions.keys()
    book.tags = {t.key: t for t in await catalog.current_tags(conn, project_id, tag_names)}
    return book


def _all_tags(node: Node, named: dict[str, Node]) -> set[str]:
    return set().union(referenced_tags(node), *(referenced_tags(named[n]) for n in _all_exprs(node, named)))


def _all_exprs(node: Node, named: dict[str, Node]) -> set[str]:
    seen: set[str] = set()
    stack = list(referenced_expressions(node))
    while stack:
        name = stack.pop()
        if name in seen or name not in named:
            continue
        seen.add(name)
        stack.extend(referenced_expressions(named[name]))
    return seen
