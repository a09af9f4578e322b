"""The expression language's errors: what cannot be parsed, printed or evaluated, and missing names."""

from __future__ import annotations


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


class _UnknownName(ExpressionError):
    """A name the caller did not supply; ``label`` says what kind of name."""

    label = ""
    name: str

    def __init__(self, name: str) -> None:
        super().__init__(f"{self.label} not found: {name}")
        self.name = name

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name,))


class UnknownTagError(_UnknownName):
    """``tag(NAME)`` names a tag the caller did not supply."""

    label = "Tag"


class UnknownExpressionError(_UnknownName):
    """``expr(NAME)`` names an expression the caller did not supply."""

    label = "Expression"
