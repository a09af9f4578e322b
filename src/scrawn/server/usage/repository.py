"""SQL on ``usage_records`` that other domains ask about."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import usage_records


async def any_record(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project holds any usage record (amounts in its currency)."""
    found = await conn.scalar(
        select(usage_records.c.project_id).where(usage_records.c.project_id == project_id).limit(1)
    )
    return found is not None
