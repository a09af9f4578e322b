"""The column and table shapes the migrations repeat. Each helper builds exactly the Alembic operations a
migration would spell out by hand, in the same order, so the migrated schema is the same to the byte.

Columns are NOT NULL unless ``null=True``; ``default`` is a server default. The helpers that take several
names return one column per name, in order, all of that type."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

Columns = list[sa.Column[Any]]
_ROW_KEY = ("project_id", "mode", "id")


def _columns(
    kind: Callable[[], sa.types.TypeEngine[Any]], names: Iterable[str], null: bool, default: str | None
) -> Columns:
    return [sa.Column(name, kind(), server_default=default, nullable=null) for name in names]


def string(length: int, *names: str, null: bool = False, default: str | None = None) -> Columns:
    return _columns(lambda: sa.String(length=length), names, null, default)


def big(*names: str, null: bool = False, default: str | None = None) -> Columns:
    """BIGINT: amounts (micro-units, see db/types.py) and times (epoch milliseconds)."""
    return _columns(sa.BigInteger, names, null, default)


def integer(*names: str, null: bool = False, default: str | None = None) -> Columns:
    return _columns(sa.Integer, names, null, default)


def text(*names: str, null: bool = False) -> Columns:
    return _columns(sa.Text, names, null, None)


def ids(*names: str, null: bool = False) -> Columns:
    """Row ids (UUIDs and the like)."""
    return string(36, *names, null=null)


def scope(*, id_length: int | None = 36) -> Columns:
    """The leading columns of a project's per-mode rows: project_id, mode and (unless ``id_length`` is
    None) the row's id."""
    return [*ids("project_id"), *string(4, "mode"), *(string(id_length, "id") if id_length else [])]


def user() -> Columns:
    return string(256, "user_id")


def idempotency() -> Columns:
    """The client's idempotency key and the fingerprint of what it was first used for."""
    return [*string(255, "idempotency_key"), *string(64, "fingerprint")]


def create(
    table: str,
    *columns: Columns,
    key: Sequence[str],
    idempotent: bool = False,
    indexes: Sequence[tuple[str, list[str]]] = (),
) -> None:
    """``op.create_table`` with the primary key ``pk_<table>`` on ``key`` (then, with ``idempotent``, the
    unique idempotency key per project and mode), then the (non-unique) ``indexes``."""
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint(*key, name=op.f(f"pk_{table}"))]
    if idempotent:
        name = op.f(f"uq_{table}_project_id_mode_idempotency_key")
        constraints.append(sa.UniqueConstraint("project_id", "mode", "idempotency_key", name=name))
    op.create_table(table, *(c for group in columns for c in group), *constraints)
    if indexes:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index, on in indexes:
                batch_op.create_index(index, on, unique=False)


def drop(table: str, *indexes: str) -> None:
    """Undo :func:`create`: drop the named indexes, then the table."""
    drop_indexes(table, *indexes)
    op.drop_table(table)


def drop_indexes(table: str, *indexes: str) -> None:
    if indexes:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(index)


def rows(
    table: str,
    *columns: Columns,
    id_length: int = 36,
    idempotent: bool = False,
    indexes: Sequence[tuple[str, list[str]]] = (),
) -> None:
    """A project's per-mode rows, keyed by (project_id, mode, id)."""
    create(table, scope(id_length=id_length), *columns, key=_ROW_KEY, idempotent=idempotent, indexes=indexes)


def project_rows(table: str, *columns: Columns, indexes: Sequence[tuple[str, list[str]]] = ()) -> None:
    """A project's rows shared by both modes (keys, price overrides), keyed by (project_id, id)."""
    create(table, ids("project_id", "id"), *columns, key=("project_id", "id"), indexes=indexes)


def user_rows(
    table: str, *columns: Columns, idempotent: bool = False, indexes: Sequence[tuple[str, list[str]]] = ()
) -> None:
    """Per-mode rows of one user (their wallet's lots, holds, entries, alerts, checkouts)."""
    rows(table, user(), *columns, idempotent=idempotent, indexes=indexes)


def versioned(table: str, key: str, value: Columns) -> None:
    """A versioned catalog entry (tags, expressions, event prices): one row per version of a key; a
    deletion is a version with ``deleted`` set."""
    create(
        table,
        ids("project_id"),
        string(128, key),
        integer("version"),
        value,
        _columns(sa.Boolean, ["deleted"], False, None),
        big("created_at"),
        key=("project_id", key, "version"),
    )


def add_columns(table: str, *columns: Columns) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for group in columns:
            for column in group:
                batch_op.add_column(column)


def drop_columns(table: str, *names: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for name in names:
            batch_op.drop_column(name)
