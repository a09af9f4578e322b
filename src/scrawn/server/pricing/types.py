"""The price catalog's entries as the domain reads them (a live version each)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Tag:
    key: str
    price: Decimal
    version: int
    created_at: int


@dataclass(frozen=True)
class NamedExpression:
    """A named expression, or an event price (``name`` is then the event type)."""

    name: str
    text: str
    version: int
    created_at: int
