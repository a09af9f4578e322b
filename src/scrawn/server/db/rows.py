"""Rows leave a repository as typed values: the one conversion every repository shares."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

_Typed = TypeVar("_Typed")


def typed(cls: type[_Typed], row: Any) -> _Typed:
    """A row as the frozen dataclass ``cls``: each of its fields read from the row's column of that name."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]
