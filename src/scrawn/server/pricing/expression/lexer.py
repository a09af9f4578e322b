"""The tokenizer: expression text → tokens, one at a time, with errors that say what to write instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from scrawn.server.pricing.expression.errors import ExpressionError
from scrawn.server.pricing.expression.nodes import DIGITS, UPPER, clip

INFIX_HINT: Final = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
WHITESPACE: Final = frozenset(" \t\r\n")
NAME_START: Final = frozenset(UPPER | frozenset("abcdefghijklmnopqrstuvwxyz_"))
NAME_CHARS: Final = frozenset(NAME_START | DIGITS)

NUMBER: Final = "number"
NAME: Final = "name"
LPAREN: Final = "("
RPAREN: Final = ")"
COMMA: Final = ","
END: Final = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int

    def describe(self) -> str:
        if self.kind == END:
            return "the end of the expression"
        if self.kind == NUMBER:
            return f"number {clip(self.text)!r}"
        if self.kind == NAME:
            return f"name {clip(self.text)!r}"
        return repr(self.text)


class Lexer:
    """Produces tokens on demand, so errors come out in left-to-right order."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def next(self) -> Token:
        text, n = self._text, len(self._text)
        i = self._pos
        while i < n and text[i] in WHITESPACE:
            i += 1
        if i >= n:
            self._pos = n
            return Token(END, "", n)
        ch = text[i]
        if ch in "(),":
            self._pos = i + 1
            return Token(ch, ch, i)
        if ch in DIGITS:
            return self._number(i)
        if ch in NAME_START:
            j = i + 1
            while j < n and text[j] in NAME_CHARS:
                j += 1
            self._pos = j
            return Token(NAME, text[i:j], i)
        raise self._unexpected(ch, i)

    def _number(self, start: int) -> Token:
        text, n = self._text, len(self._text)
        j = start
        while j < n and text[j] in DIGITS:
            j += 1
        if j < n and text[j] == ".":
            k = j + 1
            while k < n and text[k] in DIGITS:
                k += 1
            if k == j + 1:
                raise ExpressionError(
                    f"Invalid number at offset {start}: expected a digit after '.'", offset=k
                )
            j = k
        if j < n and text[j] in "eE":
            raise ExpressionError(
                f"Invalid number at offset {start}: exponents are not supported (write the digits out)",
                offset=j,
            )
        if j < n and (text[j] in NAME_CHARS or text[j] == "."):
            raise ExpressionError(f"Unexpected {text[j]!r} after a number at offset {j}", offset=j)
        self._pos = j
        return Token(NUMBER, text[start:j], start)

    @staticmethod
    def _unexpected(ch: str, i: int) -> ExpressionError:
        if ch == "-":
            msg = (
                f"Unexpected '-' at offset {i}: negative numbers and infix operators are not supported; "
                "use sub(…)"
            )
        elif ch in INFIX_HINT:
            hint = INFIX_HINT[ch]
            msg = f"Unexpected {ch!r} at offset {i}: infix operators are not supported; use {hint}(…)"
        elif ch == ".":
            msg = f"Unexpected '.' at offset {i}: a number must start with a digit (write 0.5, not .5)"
        elif ch in "'\"`":
            msg = f"Unexpected {ch!r} at offset {i}: names are not quoted (write tag(NAME))"
        else:
            msg = f"Unexpected character {ch!r} at offset {i}"
        return ExpressionError(msg, offset=i)
