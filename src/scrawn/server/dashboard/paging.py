"""Keyset cursors in the URL (``after=<ms>:<id>``) and the filters' parsing, shared by the listing pages."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from scrawn.errors import ValidationError
from scrawn.server import paging

PAGE = 50

Row = TypeVar("Row")


def cursor(text: str | None) -> tuple[int, str] | None:
    """``<ms>:<id>`` from a page link; a malformed one names the field."""
    return paging.cursor(text, field="after", problem="is not a page link this dashboard made")


def split(rows: Sequence[Row], key: Callable[[Row], tuple[int, str]]) -> tuple[list[Row], str | None]:
    """Of the ``PAGE + 1`` rows fetched, the page shown and the next page's cursor (None on the last)."""
    shown, after = paging.next_page(rows, PAGE, key)
    return shown, after or None


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
