"""Keyset cursors in the URL (``after=<ms>:<id>``) and the filters' parsing, shared by the listing pages."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from scrawn.errors import ValidationError

PAGE = 50

Row = TypeVar("Row")


def cursor(text: str | None) -> tuple[int, str] | None:
    """``<ms>:<id>`` from a page link; a malformed one names the field."""
    if not text:
        return None
    at, _, ident = text.partition(":")
    if not at.isdigit() or not ident:
        raise ValidationError("after", "is not a page link this dashboard made")
    return int(at), ident


def cursor_text(at: int, ident: str) -> str:
    return f"{at}:{ident}"


def split(rows: Sequence[Row], key: Callable[[Row], tuple[int, str]]) -> tuple[list[Row], str | None]:
    """Of the ``PAGE + 1`` rows fetched, the page shown and the next page's cursor (None on the last)."""
    shown = list(rows[:PAGE])
    return shown, cursor_text(*key(shown[-1])) if len(rows) > PAGE else None


def day(field: str, text: str | None, *, end: bool = False) -> int | None:
    """``YYYY-MM-DD`` (UTC) as Unix ms: its start, or the next day's start when ``end``."""
    if not text:
        return None
    try:
        parsed = time.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValidationError(field, "must be a date, YYYY-MM-DD") from None
    start = calendar.timegm(parsed) * 1000
    return start + 86_400_000 if end else start
