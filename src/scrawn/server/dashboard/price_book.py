"""The Pricing page's built-in LLM price book section: the bundled book's models at today's prices
(``pricing/models.py``), searched by ``?model=`` and limited to ``SHOWN`` rows, each marked when one of the
project's overrides prices it instead."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from scrawn.errors import ValidationError
from scrawn.money import format_amount
from scrawn.server.db.engine import now_ms
from scrawn.server.pricing import models
from scrawn.server.pricing.models import Override, Rates
from scrawn.server.pricing.overrides import MAX_MODEL

SHOWN = 100


@dataclass(frozen=True)
class BookSection:
    rows: list[Rates]
    total: int  # every model matching the search
    search: str
    source: str  # the bundled book's name and version


def search_of(text: str | None) -> str:
    search = (text or "").strip()
    if len(search) > MAX_MODEL:
        raise ValidationError("model", f"must be at most {MAX_MODEL} characters")
    return search


def section(current: list[Override], search: str) -> BookSection:
    """The book's entries matching ``search`` (a case-insensitive part of the model id or name), by
    provider then model; ``in_force`` is False where one of ``current`` replaces the entry now."""
    found = [r for r in models.price_list(current, now_ms(), search=search) if r.source == "book"]
    return BookSection(found[:SHOWN], len(found), search, models.SOURCE)


def usd(value: Decimal | None) -> str:
    """USD with every decimal the book gives (never float-rounded); "—" when the book has no price."""
    return "—" if value is None else format_amount(value)
