"""The evaluator: tree → exact Decimal, in a private decimal context, without recursion."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from scrawn.server.pricing.expression import nodes
from scrawn.server.pricing.expression.errors import ExpressionError, UnknownExpressionError, UnknownTagError
from scrawn.server.pricing.expression.printer import check, print_node

_PRECISION: Final = 50
_MAX_EXPONENT: Final = 999_999


@dataclass(frozen=True, slots=True)
class Variables:
    """Event values for the placeholders; ``None`` means not available on this event."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    input_cache_tokens: int | None = None
    output_cache_tokens: int | None = None
    quantity: Decimal | None = None


_NO_VARIABLES: Final = Variables()


@dataclass(frozen=True, slots=True)
class _Apply:
    call: nodes.Call


@dataclass(frozen=True, slots=True)
class _Leave:
    name: str


def _context() -> decimal.Context:
    return decimal.Context(
        prec=_PRECISION,
        rounding=decimal.ROUND_HALF_EVEN,
        Emax=_MAX_EXPONENT,
        Emin=-_MAX_EXPONENT,
        capitals=1,
        clamp=0,
        flags=[],
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


def _as_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ExpressionError(f"{what} has an invalid value: {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ExpressionError(f"{what} has an invalid value: {value!r}")
    return result


class _Evaluator:
    """Iterative (explicit stack), so no input can exhaust Python's recursion limit. Named expression
    values are memoised per call, so shared references are evaluated once."""

    def __init__(
        self, tags: Mapping[str, Decimal], expressions: Mapping[str, nodes.Node], variables: Variables
    ) -> None:
        self._tags = tags
        self._expressions = expressions
        self._variables: dict[str, int | Decimal | None] = {
            "inputTokens": variables.input_tokens,
            "outputTokens": variables.output_tokens,
            "inputCacheTokens": variables.input_cache_tokens,
            "outputCacheTokens": variables.output_cache_tokens,
            "quantity": variables.quantity,
        }
        self._ctx = _context()
        self._memo: dict[str, Decimal] = {}
        self._path: list[str] = []

    def _where(self) -> str:
        return f" (in expression {self._path[-1]})" if self._path else ""

    def run(self, root: nodes.Node) -> Decimal:
        check(root)
        tasks: list[nodes.Node | _Apply | _Leave] = [root]
        values: list[Decimal] = []
        while tasks:
            task = tasks.pop()
            if isinstance(task, nodes.Number):
                values.append(task.value)
            elif isinstance(task, nodes.TagRef):
                values.append(self._tag(task.name))
            elif isinstance(task, nodes.Placeholder):
                values.append(self._placeholder(task.name))
            elif isinstance(task, nodes.ExprRef):
                cached = self._memo.get(task.name)
                if cached is not None:
                    values.append(cached)
                else:
                    target = self._enter(task.name)
                    tasks.append(_Leave(task.name))
                    tasks.append(target)
            elif isinstance(task, nodes.Call):
                tasks.append(_Apply(task))
                tasks.extend(reversed(task.args))  # so the first argument is evaluated first
            elif isinstance(task, _Apply):
                n = len(task.call.args)
                args = values[-n:]
                del values[-n:]
                values.append(self._apply(task.call, args))
            else:
                self._path.pop()
                self._memo[task.name] = values[-1]
        assert len(values) == 1
        return values[0]

    def _enter(self, name: str) -> nodes.Node:
        if name in self._path:
            cycle = [*self._path[self._path.index(name) :], name]
            raise ExpressionError(f"Expression cycle: {' -> '.join(cycle)}")
        if len(self._path) >= nodes.MAX_DEPTH:
            chain = " -> ".join([*self._path, name])
            raise ExpressionError(
                f"Expression references are nested too deeply (more than {nodes.MAX_DEPTH}): {chain}"
            )
        target = self._expressions.get(name)
        if target is None:
            raise UnknownExpressionError(name)
        self._path.append(name)
        check(target, self._where())
        return target

    def _tag(self, name: str) -> Decimal:
        value = self._tags.get(name)
        if value is None:
            raise UnknownTagError(name)
        return _as_decimal(value, f"Tag {name}")

    def _placeholder(self, name: str) -> Decimal:
        value = self._variables[name]
        if value is None:
            if name == "quantity":
                scope = "quantity() is only valid on typed events"
            else:
                scope = "token placeholders are only valid on AI events"
            raise ExpressionError(f"{name}() is not available on this event{self._where()}: {scope}")
        return _as_decimal(value, f"{name}()")

    def _apply(self, call: nodes.Call, args: list[Decimal]) -> Decimal:
        ctx = self._ctx
        fn = call.fn
        try:
            acc = args[0]
            if fn == "add":
                for value in args[1:]:
                    acc = ctx.add(acc, value)
            elif fn == "sub":
                for value in args[1:]:
                    acc = ctx.subtract(acc, value)
            elif fn == "mul":
                for value in args[1:]:
                    acc = ctx.multiply(acc, value)
            else:
                for position, value in enumerate(args[1:], start=2):
                    if value.is_zero():
                        raise ExpressionError(
                            f"Division by zero{self._where()}: argument {position} of "
                            f"{nodes.clip(print_node(call), 80)} is 0"
                        )
                    acc = ctx.divide(acc, value)
        except decimal.Overflow:
            raise ExpressionError(f"Number too large in {fn}(){self._where()}") from None
        except decimal.DecimalException as exc:  # pragma: no cover - inputs are finite, zero is checked
            raise ExpressionError(
                f"Arithmetic error in {fn}(){self._where()}: {type(exc).__name__}"
            ) from None
        return acc


def evaluate(
    node: nodes.Node,
    *,
    tags: Mapping[str, Decimal],
    expressions: Mapping[str, nodes.Node],
    variables: Variables = _NO_VARIABLES,
) -> Decimal:
    """Evaluate ``node`` with caller-resolved ``tags`` and parsed named ``expressions``.

    Raises :class:`UnknownTagError` / :class:`UnknownExpressionError` for missing names, and
    :class:`ExpressionError` for an ``expr()`` cycle (naming its path), references more than
    :data:`~nodes.MAX_DEPTH` deep, an unavailable placeholder (naming it), division by zero, or a negative
    result. The result is not rounded to micro-units: that is the caller's job.
    """
    result = _Evaluator(tags, expressions, variables).run(node)
    if result < 0:
        raise ExpressionError(f"Expression result is negative: {result}")
    if result.is_zero():
        return result.copy_abs()  # never "-0"
    return result
