"""All SQL on ``api_keys``. No other module reads this table."""

from __future__ import annotations

from sqlalchemy import RowMapping, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.rows import ids_matching, project_deletes
from scrawn.server.db.schema import api_keys
from scrawn.server.keys.types import KeyRecord


def _record(m: RowMapping) -> KeyRecord:
    return KeyRecord(**{f: m[f] for f in KeyRecord.__dataclass_fields__})


async def by_hash(conn: AsyncConnection, digest: str) -> KeyRecord | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest))).first()
    return None if row is None else _record(row._mapping)


async def insert(conn: AsyncConnection, record: KeyRecord, key_hash: str) -> None:
    await conn.execute(api_keys.insert().values(**record.__dict__, key_hash=key_hash))


async def list_for(conn: AsyncConnection, project_id: str) -> list[KeyRecord]:
    rows = await conn.execute(
        select(api_keys).where(api_keys.c.project_id == project_id).order_by(api_keys.c.created_at)
    )
    return [_record(row._mapping) for row in rows]


async def by_id(conn: AsyncConnection, project_id: str, key_id: str) -> KeyRecord | None:
    found = select(api_keys).where(api_keys.c.project_id == project_id, api_keys.c.id == key_id)
    row = (await conn.execute(found)).first()
    return None if row is None else _record(row._mapping)


async def page(
    conn: AsyncConnection, project_id: str, after: tuple[int, str] | None, size: int
) -> list[KeyRecord]:
    """Keys by (created_at, id), those after the cursor; keyset paging on the primary key's project."""
    query = select(api_keys).where(api_keys.c.project_id == project_id)
    if after is not None:
        created, ident = after
        query = query.where(
            or_(
                api_keys.c.created_at > created,
                and_(api_keys.c.created_at == created, api_keys.c.id > ident),
            )
        )
    rows = await conn.execute(query.order_by(api_keys.c.created_at, api_keys.c.id).limit(size))
    return [_record(row._mapping) for row in rows]


async def set_last_used(conn: AsyncConnection, project_id: str, key_id: str, at: int) -> None:
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.project_id == project_id, api_keys.c.id == key_id)
        .values(last_used_at=at)
    )


async def set_revoked(conn: AsyncConnection, project_id: str, key_id: str, at: int) -> bool:
    """True when the key exists (and is now revoked). A key revoked before keeps its first revocation time."""
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.project_id == project_id, api_keys.c.id == key_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, at))
    )
    return bool(result.rowcount)


async def ids_matching_prefix(conn: AsyncConnection, project_id: str, given: str) -> list[str]:
    """The project's key ids equal to ``given`` or starting with it (``db.rows.ids_matching``)."""
    return list(await conn.scalars(ids_matching(api_keys.c.id, given, api_keys.c.project_id == project_id)))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's API keys; how many rows went (``scrawn projects delete``)."""
    deletes = project_deletes(project_id, api_keys)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
