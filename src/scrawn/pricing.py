"""Pricing builders: a small AST that serialises to the expression language of DESIGN §4.

    >>> from scrawn import tag, mul, add, input_tokens
    >>> str(add(mul(tag("GPT_IN"), input_tokens()), 0.5))
    'add(mul(tag(GPT_IN),inputTokens()),0.5)'

Everything is validated when it is built (names, argument counts, literal zero divisors, numbers, length
and depth), so a bad expression fails in the line that wrote it, naming the builder at fault. Where a
placeholder may appear is checked when the expression is *used*: token placeholders only in AI token
debits, ``quantity()`` only in typed events (:func:`to_debit`).

Numbers are minor units (cents) and may be ``int``, ``Decimal``, a decimal ``str`` or a ``float``; a float
is read through its shortest ``repr`` (``0.1`` is ``"0.1"``, never 0.1000000000000000055…). NaN, infinity
and negative numbers are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, NamedTuple, TypeAlias

from scrawn.errors import ValidationError
from scrawn.money import MAX_MICROS, MICROS_PER_UNIT

__all__ = [
    "Amount",
    "Debit",
    "ExprRef",
    "Expression",
    "ExpressionInput",
    "Operation",
    "Placeholder",
    "Tag",
    "add",
    "amount",
    "div",
    "expr",
    "input_cache_tokens",
    "input_tokens",
    "mul",
    "output_cache_tokens",
    "output_tokens",
    "quantity",
    "sub",
    "tag",
    "to_debit",
]

MAX_LENGTH: Final = 2048
"""Longest expression text the server accepts, in characters."""
MAX_DEPTH: Final = 32
"""Deepest expression tree the server accepts (a leaf is depth 1)."""
MAX_NAME: Final = 128
INT32_MAX: Final = 2**31 - 1
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_CONTEXT = "Invalid pricing expression"

TOKEN_PLACEHOLDERS: Final = frozenset(
    {"inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens"}
)
QUANTITY: Final = "quantity"
_PLACEHOLDER_HOME = {
    **{name: "AI token debits" for name in TOKEN_PLACEHOLDERS},
    QUANTITY: "typed events (create_event/TrackEvents)",
}

Number: TypeAlias = int | Decimal | str | float


class Expression:
    """An immutable pricing expression. ``str(e)`` is its canonical text (no whitespace)."""

    __slots__ = ("_depth", "_placeholders", "_text")

    _text: str
    _depth: int
    _placeholders: frozenset[str]

    def __init__(self, text: str, depth: int, placeholders: frozenset[str]) -> None:
        self._text = text
        self._depth = depth
        self._placeholders = placeholders

    @property
    def text(self) -> str:
        return self._text

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def placeholders(self) -> frozenset[str]:
        """Names of the placeholders used anywhere in the tree (``inputTokens``, ``quantity``, …)."""
        return self._placeholders

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __bool__(self) -> bool:
        return True


class Amount(Expression):
    """A number literal, in minor units."""

    __slots__ = ("value",)

    def __init__(self, value: Decimal, text: str) -> None:
        super().__init__(text, 1, frozenset())
        self.value = value


class Tag(Expression):
    """``tag(NAME)``: a named price kept on the server."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(f"tag({name})", 1, frozenset())
        self.name = name


class ExprRef(Expression):
    """``expr(NAME)``: a named expression kept on the server."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(f"expr({name})", 1, frozenset())
        self.name = name


class Placeholder(Expression):
    """A value the server fills in: ``inputTokens()``, ``outputTokens()``, ``inputCacheTokens()``,
    ``outputCacheTokens()`` (AI token events) or ``quantity()`` (typed events)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}()", 1, frozenset({name}))
        self.name = name


class Operation(Expression):
    """``add``/``sub``/``mul``/``div`` over two or more arguments (``sub`` and ``div`` fold left)."""

    __slots__ = ("args", "op")

    def __init__(self, op: str, args: tuple[Expression, ...]) -> None:
        text = f"{op}({','.join(a.text for a in args)})"
        depth = 1 + max(a.depth for a in args)
        placeholders = frozenset().union(*(a.placeholders for a in args))
        super().__init__(text, depth, placeholders)
        self.op = op
        self.args = args


ExpressionInput: TypeAlias = Expression | int | Decimal | str | float
"""What a builder argument may be: an expression, or a number (wrapped as an :func:`amount`)."""

# ------------------------------------------------------------------------------------------- numbers


def parse_number(field: str, value: object) -> Decimal:
    """A non-negative finite amount from ``int``, ``Decimal``, a decimal ``str`` or a ``float`` (via its
    shortest repr). Raises :class:`ValidationError` naming ``field``."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a number, not a bool", context=_CONTEXT)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, "must be a finite number (got NaN or infinity)", context=_CONTEXT)
        number = Decimal(repr(value))
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_LENGTH:
            raise ValidationError(field, 'must be a decimal number such as "12.5"', context=_CONTEXT)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValidationError(
                field,
                'must be a decimal number such as "12.5" (use tag("NAME") for a tag)',
                context=_CONTEXT,
            ) from None
    else:
        raise ValidationError(
            field, f"must be an int, Decimal, str or float, not {type(value).__name__}", context=_CONTEXT
        )
    if not number.is_finite():
        raise ValidationError(field, "must be a finite number (got NaN or infinity)", context=_CONTEXT)
    if number.is_zero():
        return Decimal(0)
    if number < 0:
        raise ValidationError(field, "must not be negative", context=_CONTEXT)
    if number.adjusted() >= MAX_LENGTH or number.as_tuple().exponent < -MAX_LENGTH:  # type: ignore[operator]
        raise ValidationError(field, "is too long to write out", context=_CONTEXT)
    return number


def format_number(number: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: ``12.5``, ``0``, ``1000``."""
    if number.is_zero():
        return "0"
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _amount(field: str, value: object) -> Amount:
    number = parse_number(field, value)
    return Amount(number, format_number(number))


# ------------------------------------------------------------------------------------------ builders


def _name(field: str, name: object) -> str:
    if not isinstance(name, str):
        raise ValidationError(field, f"must be a string name, not {type(name).__name__}", context=_CONTEXT)
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise ValidationError(
            field, f"must match ^[A-Z][A-Z0-9_]*$ and be at most {MAX_NAME} characters", context=_CONTEXT
        )
    return name


def _arg(field: str, value: object) -> Expression:
    if isinstance(value, Expression):
        return value
    return _amount(field, value)


def tag(name: str) -> Tag:
    """A named price kept on the server: ``tag("GPT_IN")`` → ``tag(GPT_IN)``."""
    return Tag(_name("tag", name))


def expr(value: ExpressionInput) -> Expression:
    """A named expression kept on the server (``expr("BASE_FEE")`` → ``expr(BASE_FEE)``). As in the TS SDK
    it also wraps an inline expression (returned as is) or a number (an :func:`amount`)."""
    if isinstance(value, Expression):
        return value
    if isinstance(value, str):
        return ExprRef(_name("expr", value))
    return _amount("expr", value)


def amount(value: Number) -> Amount:
    """A number literal in minor units: ``amount(250)``, ``amount("0.25")``, ``amount(Decimal("1.5"))``."""
    return _amount("amount", value)


def _operation(op: str, args: tuple[object, ...]) -> Operation:
    if len(args) == 1 and isinstance(args[0], list | tuple):
        args = tuple(args[0])
    if len(args) < 2:
        raise ValidationError(op, f"needs at least 2 arguments, got {len(args)}", context=_CONTEXT)
    built = tuple(_arg(f"{op}[{i}]", a) for i, a in enumerate(args))
    if op == "div":
        for i, a in enumerate(built[1:], start=1):
            if isinstance(a, Amount) and a.value.is_zero():
                raise ValidationError(f"div[{i}]", "divides by a literal zero", context=_CONTEXT)
    node = Operation(op, built)
    if node.depth > MAX_DEPTH:
        raise ValidationError(op, f"is nested more than {MAX_DEPTH} levels deep", context=_CONTEXT)
    if len(node.text) > MAX_LENGTH:
        raise ValidationError(
            op, f"makes an expression of {len(node.text)} characters (at most {MAX_LENGTH})", context=_CONTEXT
        )
    return node


def add(*args: ExpressionInput) -> Operation:
    """The sum of two or more arguments."""
    return _operation("add", args)


def sub(*args: ExpressionInput) -> Operation:
    """The first argument minus each of the others (a left fold; the result must not be negative)."""
    return _operation("sub", args)


def mul(*args: ExpressionInput) -> Operation:
    """The product of two or more arguments."""
    return _operation("mul", args)


def div(*args: ExpressionInput) -> Operation:
    """The first argument divided by each of the others, exactly (not floored, unlike upstream Scrawn)."""
    return _operation("div", args)


def input_tokens() -> Placeholder:
    """The event's input tokens (AI token debits only)."""
    return Placeholder("inputTokens")


def output_tokens() -> Placeholder:
    """The event's output tokens (AI token debits only)."""
    return Placeholder("outputTokens")


def input_cache_tokens() -> Placeholder:
    """The event's cached input tokens (AI token debits only)."""
    return Placeholder("inputCacheTokens")


def output_cache_tokens() -> Placeholder:
    """The event's cached output tokens (AI token debits only)."""
    return Placeholder("outputCacheTokens")


def quantity() -> Placeholder:
    """The typed event's quantity (typed events only)."""
    return Placeholder(QUANTITY)


# --------------------------------------------------------------------------------------------- debits


class Debit(NamedTuple):
    """A debit as the wire carries it: ``amount`` (a whole int32 of minor units), a ``tag`` name or
    ``expr`` text. Fractional and larger amounts travel as expression text (the number literal)."""

    kind: Literal["amount", "tag", "expr"]
    value: int | str


def to_debit(field: str, value: object, *, allowed: Iterable[str] = ()) -> Debit:
    """Turn what a caller passed as a debit (a number, ``tag(...)`` or any expression) into its wire form,
    refusing placeholders that are not in ``allowed`` — e.g. ``allowed=TOKEN_PLACEHOLDERS`` for AI debits.
    Raises :class:`ValidationError` naming ``field``."""
    if type(value) is int and 0 <= value <= INT32_MAX:  # the hot path of track()
        return Debit("amount", value)
    if isinstance(value, Tag):
        return Debit("tag", value.name)
    if isinstance(value, Expression) and not isinstance(value, Amount):
        unexpected = sorted(value.placeholders - frozenset(allowed))
        if unexpected:
            name = unexpected[0]
            raise ValidationError(
                field,
                f"{name}() is only valid in {_PLACEHOLDER_HOME[name]}",
                context="Event validation failed",
            )
        return Debit("expr", value.text)
    if isinstance(value, Amount):
        number, text = value.value, value.text
    else:
        try:
            number = parse_number(field, value)
        except ValidationError as e:
            raise ValidationError(field, e.problem, context="Event validation failed") from None
        text = format_number(number)
    if number * MICROS_PER_UNIT > MAX_MICROS:
        raise ValidationError(field, "is too large", context="Event validation failed")
    if number == number.to_integral_value() and number <= INT32_MAX:
        return Debit("amount", int(number))
    return Debit("expr", text)
