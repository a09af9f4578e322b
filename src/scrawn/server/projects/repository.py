"""All SQL on ``projects``: the tenant rows and their settings. No other module reads this table."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import projects
from scrawn.server.projects.types import ProjectMoney

# The columns ``update_settings`` may write, with their stored types.
SettingValue = str | int | None


def _project(row: Row[tuple[object, ...]]) -> ProjectMoney:
    m = row._mapping
    return ProjectMoney(
        id=m["id"],
        name=m["name"],
        currency=m["currency"],
        amount_unit=m["amount_unit"],
        usd_rate=None if m["usd_rate"] is None else Decimal(m["usd_rate"]),
        late_window_days=m["late_window_days"],
        time_zone=m["time_zone"],
    )


async def insert(conn: AsyncConnection, name: str) -> str:
    project_id = str(uuid.uuid4())
    await conn.execute(projects.insert().values(id=project_id, name=name, created_at=now_ms()))
    return project_id


async def ids_and_names(conn: AsyncConnection) -> list[tuple[str, str]]:
    rows = await conn.execute(select(projects.c.id, projects.c.name).order_by(projects.c.created_at))
    return [(r.id, r.name) for r in rows]


async def get(conn: AsyncConnection, project_id: str) -> ProjectMoney | None:
    row = (await conn.execute(select(projects).where(projects.c.id == project_id))).first()
    return None if row is None else _project(row)


async def list_all(conn: AsyncConnection) -> list[ProjectMoney]:
    return [_project(r) for r in await conn.execute(select(projects).order_by(projects.c.created_at))]


async def late_window_days(conn: AsyncConnection, project_id: str) -> int | None:
    days = await conn.scalar(select(projects.c.late_window_days).where(projects.c.id == project_id))
    return None if days is None else int(days)


async def update_settings(conn: AsyncConnection, project_id: str, changes: dict[str, SettingValue]) -> None:
    await conn.execute(update(projects).where(projects.c.id == project_id).values(**changes))


async def lock(conn: AsyncConnection, project_id: str) -> bool:
    """Lock the project's row until the transaction ends (PostgreSQL ``FOR NO KEY UPDATE``: exclusive among
    writers that take it, yet it never blocks a foreign-key check); False when there is no such project."""
    found = await conn.scalar(
        select(projects.c.id).where(projects.c.id == project_id).with_for_update(key_share=True)
    )
    return found is not None


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's row itself (``scrawn projects delete``)."""
    return int((await conn.execute(delete(projects).where(projects.c.id == project_id))).rowcount)
