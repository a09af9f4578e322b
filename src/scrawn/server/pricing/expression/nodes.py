"""The expression tree, its limits and the names it may use; what a tree references."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TypeAlias

MAX_LENGTH: Final = 2048
"""Longest accepted expression text, in characters (whitespace included)."""

MAX_DEPTH: Final = 32
"""Deepest accepted expression tree: a leaf is depth 1, a call is one more than its deepest argument.
Also the longest accepted chain of ``expr()`` references during evaluation."""

MAX_NAME_LENGTH: Final = 128

UPPER: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS: Final = frozenset("0123456789")
TAG_NAME_CHARS: Final = frozenset(UPPER | DIGITS | {"_"})


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal


@dataclass(frozen=True, slots=True)
class TagRef:
    name: str


@dataclass(frozen=True, slots=True)
class ExprRef:
    name: str


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str  # "inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens" or "quantity"


@dataclass(frozen=True, slots=True)
class Call:
    fn: str  # "add", "sub", "mul" or "div"
    args: tuple[Node, ...]


Node: TypeAlias = Number | TagRef | ExprRef | Placeholder | Call

ARITHMETIC: Final = frozenset({"add", "sub", "mul", "div"})
TOKEN_PLACEHOLDERS: Final = ("inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens")
PLACEHOLDERS: Final = frozenset((*TOKEN_PLACEHOLDERS, "quantity"))
FUNCTIONS: Final = frozenset(ARITHMETIC | PLACEHOLDERS | {"tag", "expr"})
FUNCTIONS_BY_LOWER: Final = {f.lower(): f for f in FUNCTIONS}


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def name_is_valid(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME_LENGTH and name[0] in UPPER and all(ch in TAG_NAME_CHARS for ch in name)


def _referenced(node: Node, kind: type[TagRef] | type[ExprRef]) -> frozenset[str]:
    found: set[str] = set()
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, kind):
            found.add(current.name)
        elif isinstance(current, Call):
            stack.extend(current.args)
    return frozenset(found)


def referenced_tags(node: Node) -> frozenset[str]:
    """Names used in ``tag(…)`` directly in this tree (not through ``expr()`` references)."""
    return _referenced(node, TagRef)


def referenced_expressions(node: Node) -> frozenset[str]:
    """Names used in ``expr(…)`` directly in this tree (not transitively)."""
    return _referenced(node, ExprRef)
