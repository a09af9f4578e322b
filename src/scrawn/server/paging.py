"""Keyset pages, as every listing call and dashboard page hands them out: the page size a call asks for,
the cursor a page token carries (``<ms>:<id>``: the last row's time and id) and the next page's token.
The repositories read the page after a cursor (``db/rows.py``'s ``page_after``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from scrawn.errors import ValidationError

DEFAULT_PAGE, MAX_PAGE = 50, 500
NOT_OURS = "is not a token this server gave out"

Row = TypeVar("Row")


class Dated(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> int: ...


def created(row: Dated) -> tuple[int, str]:
    """The cursor of a row paged by (created_at, id)."""
    return row.created_at, row.id


def page_size(limit: int, *, context: str = "Validation failed") -> int:
    """The rows a call asks for: 0 is the default page."""
    if not 0 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be 0 (default {DEFAULT_PAGE}) to {MAX_PAGE}", context=context)
    return limit or DEFAULT_PAGE


def cursor(
    token: str | None,
    *,
    field: str = "pageToken",
    problem: str = NOT_OURS,
    context: str = "Validation failed",
) -> tuple[int, str] | None:
    """The (time, id) a page token names; None for the first page. A malformed one names ``field``."""
    if not token:
        return None
    at, _, ident = token.partition(":")
    if not at.isdigit() or not ident:
        raise ValidationError(field, problem, context=context)
    return int(at), ident


def token(at: int, ident: str) -> str:
    return f"{at}:{ident}"


def next_page(rows: Sequence[Row], size: int, key: Callable[[Row], tuple[int, str]]) -> tuple[list[Row], str]:
    """Of ``size + 1`` rows fetched, the page and the next page's token ("" when this is the last)."""
    page = list(rows[:size])
    return page, token(*key(page[-1])) if len(rows) > size else ""
