"""The rules that keep a project's pricing configuration able to bill (docs/pricing-safety.md). Pure: the
catalog loads what they need and applies them inside its write transaction.

- An expression or event price may only name tags and named expressions that exist.
- A named expression may not reach itself through ``expr()`` (a cycle could never be priced).
- A tag or named expression that a live expression or event price names cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from scrawn.errors import FailedPreconditionError, ValidationError
from scrawn.server.pricing.expression import Node, referenced_expressions, referenced_tags

Kind = Literal["tag", "expression"]
FIELD = "expression"  # the request field that holds expression text


class ConfigurationConflict(FailedPreconditionError):
    """The write is well-formed but conflicts with the rest of the catalog (a cycle, a name still in use).
    The JSON API answers it with HTTP 409."""

    api_status = 409


@dataclass(frozen=True)
class Catalog:
    """The live entries a rule needs: parsed named expressions and event prices, and which names exist."""

    tags: frozenset[str]
    expressions: Mapping[str, Node | None]  # None: stored text that no longer parses (names nothing)
    event_prices: Mapping[str, Node | None]


def _listed(label: str, names: Iterable[str]) -> str:
    ordered = sorted(names)
    return f"{label}{'s' if len(ordered) > 1 else ''}: {', '.join(ordered)}"


def check_known(node: Node, catalog: Catalog, *, writing: str | None = None) -> None:
    """Refuse text that names a missing tag or expression. ``writing`` is the expression being written
    (its own name counts as existing here, so that a self-reference is reported as a cycle)."""
    tags = referenced_tags(node) - catalog.tags
    exprs = referenced_expressions(node) - catalog.expressions.keys() - {writing}
    problems = [
        *([_listed("unknown tag", tags)] if tags else []),
        *([_listed("unknown expression", exprs)] if exprs else []),
    ]
    if problems:
        raise ValidationError(FIELD, "names " + " and ".join(problems))


def find_cycle(name: str, node: Node, catalog: Catalog) -> list[str] | None:
    """The shortest chain of ``expr()`` references from ``name`` (with ``node`` as its new text) back to
    itself, as names from ``name`` to ``name``; ``None`` if there is none. Breadth first, names visited in
    sorted order, so the answer is deterministic."""

    def edges(of: str) -> list[str]:
        if of == name:
            return sorted(referenced_expressions(node))
        parsed = catalog.expressions.get(of)
        return [] if parsed is None else sorted(referenced_expressions(parsed))

    parent: dict[str, str] = {}
    frontier = [name]
    while frontier:
        following: list[str] = []
        for current in frontier:
            for nxt in edges(current):
                if nxt == name:
                    path = [current]
                    while path[-1] != name:
                        path.append(parent[path[-1]])
                    return [*reversed(path), name]
                if nxt not in parent:
                    parent[nxt] = current
                    following.append(nxt)
        frontier = following
    return None


def check_no_cycle(name: str, node: Node, catalog: Catalog) -> None:
    cycle = find_cycle(name, node, catalog)
    if cycle is not None:
        raise ConfigurationConflict(f"{FIELD}: would form a cycle: {' -> '.join(cycle)}", field=FIELD)


def referrers(kind: Kind, name: str, catalog: Catalog) -> list[str]:
    """What names ``name``: ``expression X`` and ``event price T`` labels, sorted within each kind."""

    def names_it(node: Node | None) -> bool:
        if node is None:
            return False
        return name in (referenced_tags(node) if kind == "tag" else referenced_expressions(node))

    exprs = [n for n, node in sorted(catalog.expressions.items()) if n != name or kind == "tag"]
    return [
        *(f"expression {n}" for n in exprs if names_it(catalog.expressions[n])),
        *(f"event price {t}" for t, node in sorted(catalog.event_prices.items()) if names_it(node)),
    ]


def check_unused(kind: Kind, name: str, catalog: Catalog) -> None:
    found = referrers(kind, name, catalog)
    if found:
        label, field = ("Tag", "key") if kind == "tag" else ("Expression", "name")
        raise ConfigurationConflict(
            f"{label} {name} is used by {', '.join(found)}; change those first", field=field
        )


def priced_with(pricing: object, kind: Kind, name: str) -> bool:
    """Whether an event's recorded pricing (the ``events.pricing`` JSON, parsed) used the tag or named
    expression, directly or through ``expr()``: ``{"tag": K}``, ``{"tags": {K: v}}``, ``{"expressions":
    {N: v}}``, at the top level or in an AI event's components."""
    stack = [pricing]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        if kind == "tag" and (item.get("tag") == name or name in _keys(item.get("tags"))):
            return True
        if kind == "expression" and name in _keys(item.get("expressions")):
            return True
        stack.extend(v for v in item.values() if isinstance(v, dict))
    return False


def _keys(value: object) -> Iterable[object]:
    return value.keys() if isinstance(value, dict) else ()


def deleted_warning(kind: Kind, name: str, recent: int, days: int) -> str:
    """The warning for a delete of a name that recent events used (server log line and CLI line)."""
    events = "1 event" if recent == 1 else f"{recent} events"
    return (
        f"{kind} {name} was deleted although {events} used it in the last {days} days; future events "
        "naming it will be kept in quarantine until it is created again"
    )
