"""SQL of the payments domain that is not money movement: checkouts as read by the CLI and the checkout
page, and whether a project has a payment configuration."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import payment_configs


async def any_config(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project has a payment configuration (amounts in its currency)."""
    found = await conn.scalar(
        select(payment_configs.c.project_id).where(payment_configs.c.project_id == project_id).limit(1)
    )
    return found is not None
