"""Named inputs of the usage queries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Filter:
    user_id: str | None = None
    context: str | None = None
    model: str | None = None
    usage_type: str | None = None
    transaction_id: str | None = None
    start: int | None = None  # Unix ms, inclusive
    end: int | None = None  # Unix ms, exclusive
