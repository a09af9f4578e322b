"""The pricing expression language (DESIGN §4): tokenizer, recursive-descent parser, printer, evaluator.

Pure: no I/O, no global state. The caller resolves tags and named expressions and hands them in.

Grammar (whitespace — space, tab, CR, LF — is allowed between any two tokens)::

    expr    := NUMBER
             | "tag" "(" NAME ")" | "expr" "(" NAME ")"
             | ("add" | "sub" | "mul" | "div") "(" expr ("," expr)+ ")"
             | PLACEHOLDER "(" ")"
    PLACEHOLDER := "inputTokens" | "outputTokens" | "inputCacheTokens" | "outputCacheTokens" | "quantity"
    NUMBER  := DIGIT+ ("." DIGIT+)?            -- no sign, no exponent, no leading "."
    NAME    := [A-Z] [A-Z0-9_]*                -- at most 128 characters

Arithmetic runs in a private decimal context (50 significant digits, half-even); the thread's decimal
context is never read or changed. ``sub`` and ``div`` fold left over all their arguments.

Modules: ``errors`` (the exceptions), ``nodes`` (the tree and its limits), ``lexer`` and ``parser`` (text →
tree), ``printer`` (tree checks, tree → canonical text), ``evaluator`` (tree → Decimal).
"""

from __future__ import annotations

from scrawn.server.pricing.expression.errors import ExpressionError, UnknownExpressionError, UnknownTagError
from scrawn.server.pricing.expression.evaluator import Variables, evaluate
from scrawn.server.pricing.expression.nodes import (
    MAX_DEPTH,
    MAX_LENGTH,
    Call,
    ExprRef,
    Node,
    Number,
    Placeholder,
    TagRef,
    referenced_expressions,
    referenced_tags,
)
from scrawn.server.pricing.expression.parser import parse
from scrawn.server.pricing.expression.printer import to_text

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Call",
    "ExprRef",
    "ExpressionError",
    "Node",
    "Number",
    "Placeholder",
    "TagRef",
    "UnknownExpressionError",
    "UnknownTagError",
    "Variables",
    "evaluate",
    "parse",
    "referenced_expressions",
    "referenced_tags",
    "to_text",
]
