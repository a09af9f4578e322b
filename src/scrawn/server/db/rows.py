"""What every repository shares: rows out as typed values, and keyset pages newest first."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_

_Typed = TypeVar("_Typed")


def typed(cls: type[_Typed], row: Any) -> _Typed:
    """A row as the frozen dataclass ``cls``: each of its fields read from the row's column of that name."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]


def owned(table: Any, project_id: str, mode: str | None = None, **equal: Any) -> list[ColumnElement[bool]]:
    """WHERE terms: one project's rows (and one mode's, when given) whose columns equal ``equal``."""
    terms = [table.c.project_id == project_id]
    if mode is not None:
        terms.append(table.c.mode == mode)
    return terms + [table.c[name] == value for name, value in equal.items()]


def filtered(table: Any, **equal: Any) -> list[ColumnElement[bool]]:
    """WHERE terms of a filter: each column equal to its value, the None ones left out (not filtered)."""
    return [table.c[name] == value for name, value in equal.items() if value is not None]


def page_after(stmt: Any, table: Any, size: int, cursor: tuple[int, str] | None) -> Any:
    """``stmt`` newest first by (created_at, id), after ``cursor``, one row more than a page."""
    if cursor is not None:
        stmt = stmt.where(
            or_(table.c.created_at < cursor[0], and_(table.c.created_at == cursor[0], table.c.id < cursor[1]))
        )
    return stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(size + 1)
