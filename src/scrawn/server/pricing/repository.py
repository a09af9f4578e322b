"""All SQL of pricing. The catalog (``tags``, ``expressions``, ``event_prices``) is a table of versions each
(a change or a delete is a new row; the live entry is the latest version, unless it marks a delete);
``model_price_overrides`` rows are soft-deleted (``deleted_at``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import now_ms
from scrawn.server.db.rows import ids_matching, owned, project_deletes
from scrawn.server.db.schema import event_prices, expressions, tags
from scrawn.server.db.schema import model_price_overrides as overrides
from scrawn.server.pricing.models import Override
from scrawn.server.pricing.types import NamedExpression, Tag


@dataclass(frozen=True)
class Kind:
    table: Table
    key: str  # the key column's name
    value: str  # the column holding the price or the expression text
    label: str  # for "not found" messages

    def column(self) -> Any:
        return self.table.c[self.key]


TAGS = Kind(tags, "key", "price", "Tag")
EXPRESSIONS = Kind(expressions, "name", "text", "Expression")
EVENT_PRICES = Kind(event_prices, "event_type", "expression", "Event price")


async def _live(conn: AsyncConnection, kind: Kind, project_id: str, keys: set[str] | None) -> list[Row[Any]]:
    """The live (latest, not deleted) version of each entry, optionally only those named."""
    t, key = kind.table, kind.column()
    latest = (
        select(key, func.max(t.c.version).label("version")).where(t.c.project_id == project_id).group_by(key)
    )
    if keys is not None:
        if not keys:
            return []
        latest = latest.where(key.in_(sorted(keys)))
    sub = latest.subquery()
    rows = await conn.execute(
        select(t)
        .join(sub, and_(key == sub.c[kind.key], t.c.version == sub.c.version))
        .where(t.c.project_id == project_id, t.c.deleted.is_(False))
        .order_by(key)
    )
    return list(rows)


async def current_tags(conn: AsyncConnection, project_id: str, keys: set[str] | None) -> list[Tag]:
    """The live tags, by key (only those named in ``keys`` unless None)."""
    rows = await _live(conn, TAGS, project_id, keys)
    return [Tag(r.key, r.price, r.version, r.created_at, r.changed_by) for r in rows]


async def current_named(
    conn: AsyncConnection, kind: Kind, project_id: str, names: set[str] | None
) -> list[NamedExpression]:
    """The live named expressions or event prices (``kind``), by name (only those in ``names`` unless
    None)."""
    rows = await _live(conn, kind, project_id, names)
    return [
        NamedExpression(r._mapping[kind.key], r._mapping[kind.value], r.version, r.created_at, r.changed_by)
        for r in rows
    ]


async def insert_version(
    conn: AsyncConnection, kind: Kind, project_id: str, key: str, value: Decimal | str, by: str | None = None
) -> tuple[int, int]:
    """Write the entry's next version, made by ``by``; returns (version, created_at)."""
    latest = await conn.scalar(
        select(func.max(kind.table.c.version)).where(
            kind.table.c.project_id == project_id, kind.column() == key
        )
    )
    version, now = int(latest or 0) + 1, now_ms()
    await conn.execute(
        kind.table.insert().values(
            project_id=project_id,
            version=version,
            deleted=False,
            created_at=now,
            changed_by=by,
            **{kind.key: key, kind.value: value},
        )
    )
    return version, now


async def is_live(conn: AsyncConnection, kind: Kind, project_id: str, key: str) -> bool:
    return bool(await _live(conn, kind, project_id, {key}))


async def insert_deleted(
    conn: AsyncConnection, kind: Kind, project_id: str, key: str, by: str | None = None
) -> None:
    """Mark an entry deleted: a copy of its live version, one version later (none: nothing to do)."""
    rows = await _live(conn, kind, project_id, {key})
    if not rows:
        return
    live = rows[0]
    values = {
        c: v for c, v in live._mapping.items() if c not in ("version", "deleted", "created_at", "changed_by")
    }
    await conn.execute(
        kind.table.insert().values(
            **values, version=live.version + 1, deleted=True, created_at=now_ms(), changed_by=by
        )
    )


# model price overrides ---------------------------------------------------------------------------------


# The override's fields stored under another column name (the rates per million tokens); the rest keep theirs.
_COLUMN = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
}


def _override(row: Row[Any]) -> Override:
    return Override(**{f.name: getattr(row, _COLUMN.get(f.name, f.name)) for f in fields(Override)})


async def live_overrides(conn: AsyncConnection, project_id: str, models: list[str] | None) -> list[Override]:
    """The project's live (not deleted) overrides, for ``models`` or all, by model, provider and time."""
    t = overrides
    stmt = select(t).where(t.c.project_id == project_id, t.c.deleted_at.is_(None))
    if models is not None:
        stmt = stmt.where(t.c.model.in_(models))
    rows = await conn.execute(stmt.order_by(t.c.model, t.c.provider, t.c.effective_from))
    return [_override(r) for r in rows]


async def retire_override(
    conn: AsyncConnection,
    project_id: str,
    model: str,
    provider: str,
    effective_from: int,
    at: int,
    by: str | None = None,
) -> bool:
    """Soft-delete the live override of the same model, provider and time; True when there was one."""
    t = overrides
    done = await conn.execute(
        update(t)
        .where(
            *owned(t, project_id, model=model, provider=provider, effective_from=effective_from),
            t.c.deleted_at.is_(None),
        )
        .values(deleted_at=at, changed_by=by)
    )
    return bool(done.rowcount)


async def insert_override(conn: AsyncConnection, project_id: str, override: Override) -> Override:
    """Store a new override; returns it as stored."""
    t = overrides
    values = {_COLUMN.get(name, name): value for name, value in asdict(override).items()}
    await conn.execute(t.insert().values(project_id=project_id, **values))
    found = (await conn.execute(select(t).where(t.c.project_id == project_id, t.c.id == override.id))).one()
    return _override(found)


async def delete_override(
    conn: AsyncConnection, project_id: str, override_id: str, at: int, by: str | None = None
) -> bool:
    """Soft delete; True when a live override had that id."""
    t = overrides
    done = await conn.execute(
        update(t)
        .where(t.c.project_id == project_id, t.c.id == override_id, t.c.deleted_at.is_(None))
        .values(deleted_at=at, changed_by=by)
    )
    return bool(done.rowcount)


async def override_ids_matching(conn: AsyncConnection, project_id: str, given: str) -> list[str]:
    """The project's override ids (not deleted) equal to ``given`` or starting with it."""
    where = (overrides.c.project_id == project_id, overrides.c.deleted_at.is_(None))
    return list(await conn.scalars(ids_matching(overrides.c.id, given, *where)))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's catalog (tags, expressions, event prices, model price overrides)."""
    deletes = project_deletes(project_id, tags, expressions, event_prices, overrides)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
