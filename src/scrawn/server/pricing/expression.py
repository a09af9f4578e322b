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
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TypeAlias

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

MAX_LENGTH: Final = 2048
"""Longest accepted expression text, in characters (whitespace included)."""

MAX_DEPTH: Final = 32
"""Deepest accepted expression tree: a leaf is depth 1, a call is one more than its deepest argument.
Also the longest accepted chain of ``expr()`` references during evaluation."""

_MAX_NAME_LENGTH: Final = 128
_PRECISION: Final = 50
_MAX_EXPONENT: Final = 999_999


# --------------------------------------------------------------------------------------------- errors


class ExpressionError(ValueError):
    """An expression that cannot be parsed, printed or evaluated. ``message`` is human text; ``offset``
    is the character offset in the text for parse errors (``None`` otherwise)."""

    message: str
    offset: int | None

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,), {"offset": self.offset})


class UnknownTagError(ExpressionError):
    """``tag(NAME)`` names a tag the caller did not supply."""

    name: str

    def __init__(self, name: str) -> None:
        super().__init__(f"Tag not found: {name}")
        self.name = name

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name,))


class UnknownExpressionError(ExpressionError):
    """``expr(NAME)`` names an expression the caller did not supply."""

    name: str

    def __init__(self, name: str) -> None:
        super().__init__(f"Expression not found: {name}")
        self.name = name

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name,))


# ------------------------------------------------------------------------------------------------ AST


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

_ARITHMETIC: Final = frozenset({"add", "sub", "mul", "div"})
_TOKEN_PLACEHOLDERS: Final = ("inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens")
_PLACEHOLDERS: Final = frozenset((*_TOKEN_PLACEHOLDERS, "quantity"))
_FUNCTIONS: Final = frozenset(_ARITHMETIC | _PLACEHOLDERS | {"tag", "expr"})
_FUNCTIONS_BY_LOWER: Final = {f.lower(): f for f in _FUNCTIONS}
_INFIX_HINT: Final = {"+": "add", "-": "sub", "*": "mul", "/": "div"}


# ------------------------------------------------------------------------------------------ tokenizer

_WHITESPACE: Final = frozenset(" \t\r\n")
_DIGITS: Final = frozenset("0123456789")
_UPPER: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_START: Final = frozenset(_UPPER | frozenset("abcdefghijklmnopqrstuvwxyz_"))
_NAME_CHARS: Final = frozenset(_NAME_START | _DIGITS)
_TAG_NAME_CHARS: Final = frozenset(_UPPER | _DIGITS | {"_"})

_NUMBER: Final = "number"
_NAME: Final = "name"
_LPAREN: Final = "("
_RPAREN: Final = ")"
_COMMA: Final = ","
_END: Final = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int

    def describe(self) -> str:
        if self.kind == _END:
            return "the end of the expression"
        if self.kind == _NUMBER:
            return f"number {_clip(self.text)!r}"
        if self.kind == _NAME:
            return f"name {_clip(self.text)!r}"
        return repr(self.text)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Lexer:
    """Produces tokens on demand, so errors come out in left-to-right order."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def next(self) -> _Token:
        text, n = self._text, len(self._text)
        i = self._pos
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            self._pos = n
            return _Token(_END, "", n)
        ch = text[i]
        if ch in "(),":
            self._pos = i + 1
            return _Token(ch, ch, i)
        if ch in _DIGITS:
            return self._number(i)
        if ch in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            self._pos = j
            return _Token(_NAME, text[i:j], i)
        raise self._unexpected(ch, i)

    def _number(self, start: int) -> _Token:
        text, n = self._text, len(self._text)
        j = start
        while j < n and text[j] in _DIGITS:
            j += 1
        if j < n and text[j] == ".":
            k = j + 1
            while k < n and text[k] in _DIGITS:
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
        if j < n and (text[j] in _NAME_CHARS or text[j] == "."):
            raise ExpressionError(f"Unexpected {text[j]!r} after a number at offset {j}", offset=j)
        self._pos = j
        return _Token(_NUMBER, text[start:j], start)

    @staticmethod
    def _unexpected(ch: str, i: int) -> ExpressionError:
        if ch == "-":
            msg = (
                f"Unexpected '-' at offset {i}: negative numbers and infix operators are not supported; "
                "use sub(…)"
            )
        elif ch in _INFIX_HINT:
            hint = _INFIX_HINT[ch]
            msg = f"Unexpected {ch!r} at offset {i}: infix operators are not supported; use {hint}(…)"
        elif ch == ".":
            msg = f"Unexpected '.' at offset {i}: a number must start with a digit (write 0.5, not .5)"
        elif ch in "'\"`":
            msg = f"Unexpected {ch!r} at offset {i}: names are not quoted (write tag(NAME))"
        else:
            msg = f"Unexpected character {ch!r} at offset {i}"
        return ExpressionError(msg, offset=i)


# --------------------------------------------------------------------------------------------- parser


def _name_is_valid(name: str) -> bool:
    return (
        0 < len(name) <= _MAX_NAME_LENGTH and name[0] in _UPPER and all(ch in _TAG_NAME_CHARS for ch in name)
    )


class _Parser:
    def __init__(self, text: str) -> None:
        self._lexer = _Lexer(text)
        self._tok = self._lexer.next()

    def _advance(self) -> _Token:
        tok = self._tok
        self._tok = self._lexer.next()
        return tok

    def parse_root(self) -> Node:
        node = self._expr(1)
        if self._tok.kind != _END:
            tok = self._tok
            raise ExpressionError(
                f"Unexpected {tok.describe()} at offset {tok.pos}: expected the end of the expression",
                offset=tok.pos,
            )
        return node

    def _expr(self, depth: int) -> Node:
        tok = self._tok
        if depth > MAX_DEPTH:
            raise ExpressionError(
                f"Expression is nested too deeply at offset {tok.pos}: more than {MAX_DEPTH} levels",
                offset=tok.pos,
            )
        if tok.kind == _NUMBER:
            self._advance()
            return Number(Decimal(tok.text))
        if tok.kind == _NAME:
            return self._call(depth)
        raise ExpressionError(
            f"Expected an expression at offset {tok.pos}, found {tok.describe()}", offset=tok.pos
        )

    def _call(self, depth: int) -> Node:
        head = self._advance()
        name = head.text
        if name not in _FUNCTIONS:
            raise self._unknown_name(head)
        if self._tok.kind != _LPAREN:
            tok = self._tok
            raise ExpressionError(
                f"Expected '(' after {name!r} at offset {tok.pos}, found {tok.describe()}", offset=tok.pos
            )
        opened = self._advance()
        if name in ("tag", "expr"):
            return self._reference(name, opened)
        if name in _PLACEHOLDERS:
            if self._tok.kind != _RPAREN:
                raise ExpressionError(
                    f"{name}() takes no arguments (offset {head.pos}), found {self._tok.describe()} "
                    f"at offset {self._tok.pos}",
                    offset=self._tok.pos,
                )
            self._advance()
            return Placeholder(name)
        args: list[Node] = []
        if self._tok.kind != _RPAREN:
            args.append(self._expr(depth + 1))
            while self._tok.kind == _COMMA:
                self._advance()
                args.append(self._expr(depth + 1))
        tok = self._tok
        if tok.kind == _END:
            raise ExpressionError(
                f"Missing ')' to close {name}( at offset {opened.pos}: "
                f"the expression ends at offset {tok.pos}",
                offset=tok.pos,
            )
        if tok.kind != _RPAREN:
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
        return Call(name, tuple(args))

    def _reference(self, fn: str, opened: _Token) -> Node:
        what = "tag" if fn == "tag" else "expression"
        tok = self._tok
        if tok.kind != _NAME:
            raise ExpressionError(
                f"Expected a {what} name in {fn}(…) at offset {tok.pos}, found {tok.describe()}",
                offset=tok.pos,
            )
        if not _name_is_valid(tok.text):
            raise ExpressionError(
                f"Invalid {what} name {_clip(tok.text)!r} at offset {tok.pos}: names match "
                f"[A-Z][A-Z0-9_]* and are at most {_MAX_NAME_LENGTH} characters",
                offset=tok.pos,
            )
        self._advance()
        close = self._tok
        if close.kind != _RPAREN:
            found = close.describe()
            raise ExpressionError(
                f"Expected ')' to close {fn}( at offset {opened.pos}, found {found} at offset {close.pos}",
                offset=close.pos,
            )
        self._advance()
        return TagRef(tok.text) if fn == "tag" else ExprRef(tok.text)

    def _unknown_name(self, head: _Token) -> ExpressionError:
        name, pos = head.text, head.pos
        proper = _FUNCTIONS_BY_LOWER.get(name.lower())
        if proper is not None:
            msg = (
                f"Unknown function {_clip(name)!r} at offset {pos}: "
                f"function names are case-sensitive; use {proper!r}"
            )
        elif self._tok.kind == _LPAREN:
            msg = f"Unknown function {_clip(name)!r} at offset {pos}"
        else:
            msg = (
                f"Unexpected name {_clip(name)!r} at offset {pos}: variables are not supported "
                "(use tag(NAME) for a price tag)"
            )
        return ExpressionError(msg, offset=pos)


def parse(text: str) -> Node:
    """Parse expression text. Raises :class:`ExpressionError` saying what is wrong and at which character
    offset (0-based; also in ``error.offset``)."""
    if not isinstance(text, str):
        raise ExpressionError(f"Expression must be a string, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"Expression is too long: {len(text)} characters (at most {MAX_LENGTH})", offset=MAX_LENGTH
        )
    if all(ch in _WHITESPACE for ch in text):
        raise ExpressionError("Expression is empty", offset=0)
    return _Parser(text).parse_root()


# ---------------------------------------------------------------------------------- checks and printer


def _check(root: object, where: str = "") -> None:
    """Check a (possibly hand-built) tree iteratively: node types, names, arity, depth, numbers."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"Expression is nested too deeply{where}: more than {MAX_DEPTH} levels")
        if isinstance(node, Number):
            value = node.value
            if not isinstance(value, Decimal) or not value.is_finite() or (value < 0 and not value.is_zero()):
                raise ExpressionError(
                    f"Invalid number{where}: {value!r} (numbers are finite and not negative)"
                )
        elif isinstance(node, TagRef | ExprRef):
            if not isinstance(node.name, str) or not _name_is_valid(node.name):
                what = "tag" if isinstance(node, TagRef) else "expression"
                raise ExpressionError(f"Invalid {what} name{where}: {_clip(str(node.name))!r}")
        elif isinstance(node, Placeholder):
            if node.name not in _PLACEHOLDERS:
                raise ExpressionError(f"Unknown placeholder{where}: {_clip(str(node.name))!r}")
        elif isinstance(node, Call):
            if node.fn not in _ARITHMETIC:
                raise ExpressionError(f"Unknown function{where}: {_clip(str(node.fn))!r}")
            if not isinstance(node.args, tuple) or len(node.args) < 2:
                raise ExpressionError(f"{node.fn}() needs at least 2 arguments{where}")
            stack.extend((arg, depth + 1) for arg in node.args)
        else:
            raise ExpressionError(f"Not an expression node{where}: {type(node).__name__}")


def _format_number(value: Decimal) -> str:
    if value.is_zero():
        return "0"
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite: checked by _check
    if value.adjusted() >= MAX_LENGTH or exponent < -MAX_LENGTH:
        raise ExpressionError(f"Number is too long to write out: {value}")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _print(node: Node) -> str:
    if isinstance(node, Number):
        return _format_number(node.value)
    if isinstance(node, TagRef):
        return f"tag({node.name})"
    if isinstance(node, ExprRef):
        return f"expr({node.name})"
    if isinstance(node, Placeholder):
        return f"{node.name}()"
    return f"{node.fn}({','.join(_print(arg) for arg in node.args)})"


def to_text(node: Node) -> str:
    """Canonical text: no whitespace, numbers without leading or trailing zeros (the TS SDK's format).
    ``parse(to_text(node)) == node``. Raises :class:`ExpressionError` for a tree that is not valid."""
    _check(node)
    text = _print(node)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"Expression is too long: {len(text)} characters (at most {MAX_LENGTH})")
    return text


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


# ------------------------------------------------------------------------------------------ evaluator


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
    call: Call


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
        self, tags: Mapping[str, Decimal], expressions: Mapping[str, Node], variables: Variables
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

    def run(self, root: Node) -> Decimal:
        _check(root)
        tasks: list[Node | _Apply | _Leave] = [root]
        values: list[Decimal] = []
        while tasks:
            task = tasks.pop()
            if isinstance(task, Number):
                values.append(task.value)
            elif isinstance(task, TagRef):
                values.append(self._tag(task.name))
            elif isinstance(task, Placeholder):
                values.append(self._placeholder(task.name))
            elif isinstance(task, ExprRef):
                cached = self._memo.get(task.name)
                if cached is not None:
                    values.append(cached)
                else:
                    target = self._enter(task.name)
                    tasks.append(_Leave(task.name))
                    tasks.append(target)
            elif isinstance(task, Call):
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

    def _enter(self, name: str) -> Node:
        if name in self._path:
            cycle = [*self._path[self._path.index(name) :], name]
            raise ExpressionError(f"Expression cycle: {' -> '.join(cycle)}")
        if len(self._path) >= MAX_DEPTH:
            chain = " -> ".join([*self._path, name])
            raise ExpressionError(
                f"Expression references are nested too deeply (more than {MAX_DEPTH}): {chain}"
            )
        target = self._expressions.get(name)
        if target is None:
            raise UnknownExpressionError(name)
        self._path.append(name)
        _check(target, self._where())
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

    def _apply(self, call: Call, args: list[Decimal]) -> Decimal:
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
                            f"{_clip(_print(call), 80)} is 0"
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
    node: Node,
    *,
    tags: Mapping[str, Decimal],
    expressions: Mapping[str, Node],
    variables: Variables = _NO_VARIABLES,
) -> Decimal:
    """Evaluate ``node`` with caller-resolved ``tags`` and parsed named ``expressions``.

    Raises :class:`UnknownTagError` / :class:`UnknownExpressionError` for missing names, and
    :class:`ExpressionError` for an ``expr()`` cycle (naming its path), references more than
    :data:`MAX_DEPTH` deep, an unavailable placeholder (naming it), division by zero, or a negative
    result. The result is not rounded to micro-units: that is the caller's job.
    """
    result = _Evaluator(tags, expressions, variables).run(node)
    if result < 0:
        raise ExpressionError(f"Expression result is negative: {result}")
    if result.is_zero():
        return result.copy_abs()  # never "-0"
    return result
