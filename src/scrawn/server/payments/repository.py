"""SQL of the payments domain that is not money movement: checkouts as read by the CLI and the checkout
page, and whether a project has a payment configuration."""

from __future__ import annotations

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import checkouts, payment_configs


async def any_config(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project has a payment configuration (amounts in its currency)."""
    found = await conn.scalar(
        select(payment_configs.c.project_id).where(payment_configs.c.project_id == project_id).limit(1)
    )
    return found is not None


async def list_checkouts(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str | None, limit: int
) -> list[Row[tuple[object, ...]]]:
    """Checkouts of a project and mode, newest first (optionally one user's)."""
    stmt = (
        select(checkouts)
        .where(checkouts.c.project_id == project_id, checkouts.c.mode == mode)
        .order_by(checkouts.c.created_at.desc())
        .limit(limit)
    )
    if user_id:
        stmt = stmt.where(checkouts.c.user_id == user_id)
    return list(await conn.execute(stmt))
