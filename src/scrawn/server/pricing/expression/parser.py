"""The recursive-descent parser: text → tree, or an error naming the character offset."""

from __future__ import annotations

from decimal import Decimal

from scrawn.server.pricing.expression import nodes
from scrawn.server.pricing.expression.errors import ExpressionError
from scrawn.server.pricing.expression.lexer import (
    COMMA,
    END,
    LPAREN,
    NAME,
    NUMBER,
    RPAREN,
    WHITESPACE,
    Lexer,
    Token,
)


class _Parser:
    def __init__(self, text: str) -> None:
        self._lexer = Lexer(text)
        self._tok = self._lexer.next()

    def _advance(self) -> Token:
        tok = self._tok
        self._tok = self._lexer.next()
        return tok

    def parse_root(self) -> nodes.Node:
        node = self._expr(1)
        if self._tok.kind != END:
            tok = self._tok
            raise ExpressionError(
                f"Unexpected {tok.describe()} at offset {tok.pos}: expected the end of the expression",
                offset=tok.pos,
            )
        return node

    def _expr(self, depth: int) -> nodes.Node:
        tok = self._tok
        if depth > nodes.MAX_DEPTH:
            raise ExpressionError(
                f"Expression is nested too deeply at offset {tok.pos}: more than {nodes.MAX_DEPTH} levels",
                offset=tok.pos,
            )
        if tok.kind == NUMBER:
            self._advance()
            return nodes.Number(Decimal(tok.text))
        if tok.kind == NAME:
            return self._call(depth)
        raise ExpressionError(
            f"Expected an expression at offset {tok.pos}, found {tok.describe()}", offset=tok.pos
        )

    def _call(self, depth: int) -> nodes.Node:
        head = self._advance()
        name = head.text
        if name not in nodes.FUNCTIONS:
            raise self._unknown_name(head)
        if self._tok.kind != LPAREN:
            tok = self._tok
            raise ExpressionError(
                f"Expected '(' after {name!r} at offset {tok.pos}, found {tok.describe()}", offset=tok.pos
            )
        opened = self._advance()
        if name in ("tag", "expr"):
            return self._reference(name, opened)
        if name in nodes.PLACEHOLDERS:
            if self._tok.kind != RPAREN:
                raise ExpressionError(
                    f"{name}() takes no arguments (offset {head.pos}), found {self._tok.describe()} "
                    f"at offset {self._tok.pos}",
                    offset=self._tok.pos,
                )
            self._advance()
            return nodes.Placeholder(name)
        args: list[nodes.Node] = []
        if self._tok.kind != RPAREN:
            args.append(self._expr(depth + 1))
            while self._tok.kind == COMMA:
                self._advance()
                args.append(self._expr(depth + 1))
        tok = self._tok
        if tok.kind == END:
            raise ExpressionError(
                f"Missing ')' to close {name}( at offset {opened.pos}: "
                f"the expression ends at offset {tok.pos}",
                offset=tok.pos,
            )
        if tok.kind != RPAREN:
            raise ExpressionError(
                f"Expected ',' or ')' in {name}(…) at offset {tok.pos}, found {tok.describe()}",
                offset=tok.pos,
            )
        self._advance()
        if len(args) < 2:
            raise ExpressionError(
                f"{name}() needs at least 2 arguments, got {len(args)} (at offset {head.pos})",
                offset=head.pos,
            )
        return nodes.Call(name, tuple(args))

    def _reference(self, fn: str, opened: Token) -> nodes.Node:
        what = "tag" if fn == "tag" else "expression"
        tok = self._tok
        if tok.kind != NAME:
            raise ExpressionError(
                f"Expected a {what} name in {fn}(…) at offset {tok.pos}, found {tok.describe()}",
                offset=tok.pos,
            )
        if not nodes.name_is_valid(tok.text):
            raise ExpressionError(
                f"Invalid {what} name {nodes.clip(tok.text)!r} at offset {tok.pos}: names match "
                f"[A-Z][A-Z0-9_]* and are at most {nodes.MAX_NAME_LENGTH} characters",
                offset=tok.pos,
            )
        self._advance()
        close = self._tok
        if close.kind != RPAREN:
            found = close.describe()
            raise ExpressionError(
                f"Expected ')' to close {fn}( at offset {opened.pos}, found {found} at offset {close.pos}",
                offset=close.pos,
            )
        self._advance()
        return nodes.TagRef(tok.text) if fn == "tag" else nodes.ExprRef(tok.text)

    def _unknown_name(self, head: Token) -> ExpressionError:
        name, pos = head.text, head.pos
        proper = nodes.FUNCTIONS_BY_LOWER.get(name.lower())
        if proper is not None:
            msg = (
                f"Unknown function {nodes.clip(name)!r} at offset {pos}: "
                f"function names are case-sensitive; use {proper!r}"
            )
        elif self._tok.kind == LPAREN:
            msg = f"Unknown function {nodes.clip(name)!r} at offset {pos}"
        else:
            msg = (
                f"Unexpected name {nodes.clip(name)!r} at offset {pos}: variables are not supported "
                "(use tag(NAME) for a price tag)"
            )
        return ExpressionError(msg, offset=pos)


def parse(text: str) -> nodes.Node:
    """Parse expression text. Raises :class:`ExpressionError` saying what is wrong and at which character
    offset (0-based; also in ``error.offset``)."""
    if not isinstance(text, str):
        raise ExpressionError(f"Expression must be a string, not {type(text).__name__}")
    if len(text) > nodes.MAX_LENGTH:
        raise ExpressionError(
            f"Expression is too long: {len(text)} characters (at most {nodes.MAX_LENGTH})",
            offset=nodes.MAX_LENGTH,
        )
    if all(ch in WHITESPACE for ch in text):
        raise ExpressionError("Expression is empty", offset=0)
    return _Parser(text).parse_root()
