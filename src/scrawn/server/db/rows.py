"""What every repository shares: rows out as typed values, and keyset pages newest first."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, delete, func, or_, select

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


ID_PREFIX_MIN = 8  # characters: a shorter id prefix names nothing (only a whole id does)


def ids_matching(column: Any, given: str, *where: Any) -> Any:
    """Up to three values of the id ``column`` (under ``where``) equal to ``given`` or, when it is
    ``ID_PREFIX_MIN`` characters or more, starting with it; the whole id first. The prefix is compared
    exactly (``LIKE`` alone ignores case on SQLite)."""
    match = column == given
    if len(given) >= ID_PREFIX_MIN:
        prefix = and_(column.startswith(given, autoescape=True), func.substr(column, 1, len(given)) == given)
        match = or_(match, prefix)
    return select(column).where(*where, match).order_by(func.length(column), column).limit(3)


def project_deletes(project_id: str, *tables: Any) -> list[Any]:
    """Statements deleting every row of the project from ``tables`` (``scrawn projects delete``)."""
    return [delete(t).where(t.c.project_id == project_id) for t in tables]
