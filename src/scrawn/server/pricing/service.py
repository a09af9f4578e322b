"""Tags (named prices), named expressions and event prices (an expression per typed-event type), per
project. Every change writes a new version row, so a priced event can name the exact versions that priced
it; a change affects future events only; a delete is a version that marks the entry deleted. Each version
records who wrote it (``by``: the API key id, or ``"cli"``).

Every write first takes the project's catalog lock (:func:`lock_catalog`) and then applies the rules of
:mod:`scrawn.server.pricing.references` to what it reads, so that no check races another write
(docs/pricing-safety.md)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, ValidationError
from scrawn.money import MoneyError, format_amount, parse_decimal, to_micros
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository as events
from scrawn.server.pricing import references, repository
from scrawn.server.pricing.expression import ExpressionError, Node, parse, referenced_tags
from scrawn.server.pricing.repository import EVENT_PRICES, EXPRESSIONS, TAGS, Kind
from scrawn.server.pricing.types import EVENT_TYPE_PATTERN, MAX_NAME, NAME_PATTERN
from scrawn.server.pricing.types import NamedExpression as NamedExpression  # re-exported for callers
from scrawn.server.pricing.types import Tag as Tag
from scrawn.server.projects import repository as projects

RECENT_DAYS = 7  # a delete reports how many events used the name in this many days


def _check_named(field: str, name: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError(field, "must be a non-empty string")
    if len(name) > MAX_NAME or not pattern.fullmatch(name):
        raise ValidationError(field, f"must match ^{pattern.pattern}$ and be at most {MAX_NAME} characters")
    return name


def check_name(field: str, name: object) -> str:
    return _check_named(field, name, NAME_PATTERN)


def check_event_type(field: str, name: object) -> str:
    return _check_named(field, name, EVENT_TYPE_PATTERN)


def check_price(field: str, value: object) -> Decimal:
    """A tag price: a non-negative integer or decimal (as a JSON number or a decimal string)."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValidationError(field, "must be a decimal string or an integer")
    try:
        price = parse_decimal(str(value))
        micros = to_micros(price)
    except MoneyError as e:
        raise ValidationError(field, str(e)) from None
    if price < 0:
        raise ValidationError(field, "must not be negative")
    if micros != price * 1_000_000:  # storage holds micro-units: never store a price other than the one given
        raise ValidationError(field, "must have at most 6 decimal places (micro-units of a minor unit)")
    return price


def check_expression(field: str, text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, "must be a non-empty string")
    try:
        parse(text)
    except ExpressionError as e:
        raise ValidationError(field, e.message) from None
    return text


async def _delete(
    kind: Kind,
    conn: AsyncConnection,
    project_id: str,
    key: str,
    *,
    referenced_as: references.Kind | None = None,
    by: str | None = None,
) -> None:
    """Refused (409) while a live expression or event price names it (``referenced_as``: what as)."""
    await lock_catalog(conn, project_id)
    if not await repository.is_live(conn, kind, project_id, key):
        raise NotFoundError(f"{kind.label} not found: {key}", field=kind.key)
    if referenced_as is not None:
        references.check_unused(referenced_as, key, await _rules_catalog(conn, project_id, set()))
    await repository.insert_deleted(conn, kind, project_id, key, by)


async def lock_catalog(conn: AsyncConnection, project_id: str) -> None:
    """Serialize catalog writes per project, so that a check and the write it allows see the same catalog.
    PostgreSQL: lock the project's row until the transaction ends (``FOR NO KEY UPDATE``: exclusive among
    catalog writers, yet it never blocks a foreign-key check). SQLite: the ``BEGIN IMMEDIATE`` of every
    write transaction already holds the database's one write lock, so the plain read is enough."""
    if not await projects.lock(conn, project_id):
        raise NotFoundError(f"Project not found: {project_id}", field="project")


def _parsed(text: str) -> Node | None:
    try:
        return parse(text)
    except ExpressionError:  # stored before a rule changed: it names nothing and can never bill
        return None


async def _rules_catalog(conn: AsyncConnection, project_id: str, tag_names: set[str]) -> references.Catalog:
    """What the rules read: which of ``tag_names`` exist, and every live expression and event price."""
    found = await repository.current_tags(conn, project_id, tag_names)
    exprs = await repository.current_named(conn, EXPRESSIONS, project_id, None)
    prices = await repository.current_named(conn, EVENT_PRICES, project_id, None)
    return references.Catalog(
        tags=frozenset(t.key for t in found),
        expressions={e.name: _parsed(e.text) for e in exprs},
        event_prices={p.name: _parsed(p.text) for p in prices},
    )


async def _checked_text(
    conn: AsyncConnection, project_id: str, text: str, *, writing: str | None
) -> tuple[Node, references.Catalog]:
    node = parse(check_expression(references.FIELD, text))
    rules = await _rules_catalog(conn, project_id, set(referenced_tags(node)))
    references.check_known(node, rules, writing=writing)
    return node, rules


async def recent_uses(conn: AsyncConnection, project_id: str, kind: references.Kind, name: str) -> int:
    """How many events of the project (both modes) ingested in the last :data:`RECENT_DAYS` days were
    priced with the tag or named expression. Bounded by ``ix_events_ingested``; a text match on the quoted
    name narrows the rows, and reading each match's recorded pricing makes the count exact."""
    since = now_ms() - RECENT_DAYS * 86_400_000
    count = 0
    async for pricing in events.pricing_naming(conn, project_id, since, f'"{name}"'):
        try:
            count += references.priced_with(json.loads(pricing), kind, name)
        except ValueError:  # pragma: no cover - the column is always written as JSON
            continue
    return count


async def current_tags(conn: AsyncConnection, project_id: str, keys: set[str] | None) -> dict[str, Tag]:
    return {t.key: t for t in await repository.current_tags(conn, project_id, keys)}


async def list_tags(conn: AsyncConnection, project_id: str) -> list[Tag]:
    return list((await current_tags(conn, project_id, None)).values())


async def put_tag(
    conn: AsyncConnection, project_id: str, key: str, price: Decimal, *, by: str | None = None
) -> Tag:
    await lock_catalog(conn, project_id)
    version, now = await repository.insert_version(conn, TAGS, project_id, key, price, by)
    return Tag(key, price, version, now, by)


delete_tag = partial(_delete, TAGS, referenced_as="tag")


async def _current(
    kind: Kind, conn: AsyncConnection, project_id: str, names: set[str] | None
) -> dict[str, NamedExpression]:
    return {e.name: e for e in await repository.current_named(conn, kind, project_id, names)}


async def _put(
    kind: Kind, conn: AsyncConnection, project_id: str, name: str, text: str, *, by: str | None = None
) -> NamedExpression:
    """Write a checked named expression or event price; refused when the text names a missing tag or
    expression (400) or, for a named expression, would form a cycle (409)."""
    await lock_catalog(conn, project_id)
    writing = name if kind is EXPRESSIONS else None
    node, rules = await _checked_text(conn, project_id, text, writing=writing)
    if writing is not None:
        references.check_no_cycle(writing, node, rules)
    version, now = await repository.insert_version(conn, kind, project_id, name, text, by)
    return NamedExpression(name, text, version, now, by)


# Named expressions and event prices: the same verbs on their own tables.
current_expressions = partial(_current, EXPRESSIONS)
put_expression = partial(_put, EXPRESSIONS)
delete_expression = partial(_delete, EXPRESSIONS, referenced_as="expression")
current_event_prices = partial(_current, EVENT_PRICES)
put_event_price = partial(_put, EVENT_PRICES)
delete_event_price = partial(_delete, EVENT_PRICES)


def tag_json(tag: Tag) -> dict[str, object]:
    return {
        "key": tag.key,
        "price": format_amount(tag.price),
        "version": tag.version,
        "createdAt": tag.created_at,
    }


def expression_json(e: NamedExpression) -> dict[str, object]:
    return {"name": e.name, "expression": e.text, "version": e.version, "createdAt": e.created_at}


def event_price_json(e: NamedExpression) -> dict[str, object]:
    return {"type": e.name, "expression": e.text, "version": e.version, "createdAt": e.created_at}
