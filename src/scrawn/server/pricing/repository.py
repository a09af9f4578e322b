"""All SQL on the price catalog: ``tags``, ``expressions`` and ``event_prices``, each a table of versions
(a change or a delete is a new row; the live entry is the latest version, unless it marks a delete)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import event_prices, expressions, tags


@dataclass(frozen=True)
class Kind:
    table: Table
    key: str  # the key column's name
    label: str  # for "not found" messages

    def column(self) -> Any:
        return self.table.c[self.key]


TAGS = Kind(tags, "key", "Tag")
EXPRESSIONS = Kind(expressions, "name", "Expression")
EVENT_PRICES = Kind(event_prices, "event_type", "Event price")


async def current(
    conn: AsyncConnection, kind: Kind, project_id: str, keys: set[str] | None
) -> list[Row[Any]]:
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


async def insert_version(
    conn: AsyncConnection, kind: Kind, project_id: str, key: str, **values: Any
) -> tuple[int, int]:
    """Write the entry's next version; returns (version, created_at)."""
    latest = await conn.scalar(
        select(func.max(kind.table.c.version)).where(
            kind.table.c.project_id == project_id, kind.column() == key
        )
    )
    version, now = int(latest or 0) + 1, now_ms()
    await conn.execute(
        kind.table.insert().values(
            project_id=project_id, version=version, deleted=False, created_at=now, **{kind.key: key}, **values
        )
    )
    return version, now


async def insert_deleted(conn: AsyncConnection, kind: Kind, live: Row[Any]) -> None:
    """Mark an entry deleted: a copy of its live version, one version later."""
    values = {c: v for c, v in live._mapping.items() if c not in ("version", "deleted", "created_at")}
    await conn.execute(
        kind.table.insert().values(**values, version=live.version + 1, deleted=True, created_at=now_ms())
    )
