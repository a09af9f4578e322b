"""SQL on the webhook tables asked by other modules (the ``/metrics`` gauges)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import webhook_messages


async def count_pending(conn: AsyncConnection) -> int:
    """Messages still to deliver, over every project."""
    pending = await conn.scalar(
        select(func.count())
        .select_from(webhook_messages)
        # next_attempt_at is set on every pending row: lets the due index narrow the scan.
        .where(webhook_messages.c.status == "pending")
        .where(webhook_messages.c.next_attempt_at.is_not(None))
    )
    return int(pending or 0)
