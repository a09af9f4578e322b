"""Checks of a (possibly hand-built) tree, and its canonical text."""

from __future__ import annotations

from decimal import Decimal

from scrawn.server.pricing.expression import nodes
from scrawn.server.pricing.expression.errors import ExpressionError


def check(root: object, where: str = "") -> None:
    """Check a (possibly hand-built) tree iteratively: node types, names, arity, depth, numbers."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > nodes.MAX_DEPTH:
            raise ExpressionError(
                f"Expression is nested too deeply{where}: more than {nodes.MAX_DEPTH} levels"
            )
        if isinstance(node, nodes.Number):
            value = node.value
            if not isinstance(value, Decimal) or not value.is_finite() or (value < 0 and not value.is_zero()):
                raise ExpressionError(
                    f"Invalid number{where}: {value!r} (numbers are finite and not negative)"
                )
        elif isinstance(node, nodes.TagRef | nodes.ExprRef):
            if not isinstance(node.name, str) or not nodes.name_is_valid(node.name):
                what = "tag" if isinstance(node, nodes.TagRef) else "expression"
                raise ExpressionError(f"Invalid {what} name{where}: {nodes.clip(str(node.name))!r}")
        elif isinstance(node, nodes.Placeholder):
            if node.name not in nodes.PLACEHOLDERS:
                raise ExpressionError(f"Unknown placeholder{where}: {nodes.clip(str(node.name))!r}")
        elif isinstance(node, nodes.Call):
            if node.fn not in nodes.ARITHMETIC:
                raise ExpressionError(f"Unknown function{where}: {nodes.clip(str(node.fn))!r}")
            if not isinstance(node.args, tuple) or len(node.args) < 2:
                raise ExpressionError(f"{node.fn}() needs at least 2 arguments{where}")
            stack.extend((arg, depth + 1) for arg in node.args)
        else:
            raise ExpressionError(f"Not an expression node{where}: {type(node).__name__}")


def _format_number(value: Decimal) -> str:
    if value.is_zero():
        return "0"
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: checked by check
    if value.adjusted() >= nodes.MAX_LENGTH or exponent < -nodes.MAX_LENGTH:
        raise ExpressionError(f"Number is too long to write out: {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def print_node(node: nodes.Node) -> str:
    if isinstance(node, nodes.Number):
        return _format_number(node.value)
    if isinstance(node, nodes.TagRef):
        return f"tag({node.name})"
    if isinstance(node, nodes.ExprRef):
        return f"expr({node.name})"
    if isinstance(node, nodes.Placeholder):
        return f"{node.name}()"
    return f"{node.fn}({','.join(print_node(arg) for arg in node.args)})"


def to_text(node: nodes.Node) -> str:
    """Canonical text: no whitespace, numbers without leading or trailing zeros (the TS SDK's format).
    ``parse(to_text(node)) == node``. Raises :class:`ExpressionError` for a tree that is not valid."""
    check(node)
    text = print_node(node)
    if len(text) > nodes.MAX_LENGTH:
        raise ExpressionError(f"Expression is too long: {len(text)} characters (at most {nodes.MAX_LENGTH})")
    return text
