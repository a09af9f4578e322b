"""SQL on the webhook tables: endpoints, and what other modules ask of the outbox (the ``/metrics``
gauge)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.schema import webhook_attempts, webhook_endpoints, webhook_messages


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


def _endpoint_key(project_id: str, mode: str) -> Any:
    return (webhook_endpoints.c.project_id == project_id) & (webhook_endpoints.c.mode == mode)


async def endpoint_row(conn: AsyncConnection, project_id: str, mode: str) -> Row[Any] | None:
    """The mode's endpoint row, secrets still sealed."""
    return (await conn.execute(select(webhook_endpoints).where(_endpoint_key(project_id, mode)))).first()


async def insert_endpoint(conn: AsyncConnection, project_id: str, mode: str, **values: Any) -> bool:
    """False when a concurrent first write already created it."""
    inserted = await conn.execute(
        dialect_insert(conn, webhook_endpoints)
        .values(project_id=project_id, mode=mode, **values)
        .on_conflict_do_nothing()
    )
    return bool(inserted.rowcount)


async def update_endpoint(conn: AsyncConnection, project_id: str, mode: str, **values: Any) -> None:
    await conn.execute(update(webhook_endpoints).where(_endpoint_key(project_id, mode)).values(**values))


async def delete_endpoint(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    """True when there was one."""
    result = await conn.execute(delete(webhook_endpoints).where(_endpoint_key(project_id, mode)))
    return bool(result.rowcount)


# the outbox's log ---------------------------------------------------------------------------------------


def _message_key(project_id: str, mode: str, message_id: str) -> Any:
    return (
        (webhook_messages.c.project_id == project_id)
        & (webhook_messages.c.mode == mode)
        & (webhook_messages.c.id == message_id)
    )


async def list_messages(
    conn: AsyncConnection, project_id: str, mode: str, status: str | None, limit: int
) -> list[Row[Any]]:
    """The newest first."""
    query = select(webhook_messages).where(
        webhook_messages.c.project_id == project_id, webhook_messages.c.mode == mode
    )
    if status is not None:
        query = query.where(webhook_messages.c.status == status)
    query = query.order_by(webhook_messages.c.created_at.desc(), webhook_messages.c.id).limit(limit)
    return list((await conn.execute(query)).all())


async def message(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> Row[Any] | None:
    query = select(webhook_messages).where(_message_key(project_id, mode, message_id))
    return (await conn.execute(query)).first()


async def attempts(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> list[Row[Any]]:
    query = (
        select(webhook_attempts)
        .where(
            webhook_attempts.c.project_id == project_id,
            webhook_attempts.c.mode == mode,
            webhook_attempts.c.message_id == message_id,
        )
        .order_by(webhook_attempts.c.attempt)
    )
    return list((await conn.execute(query)).all())


async def requeue(conn: AsyncConnection, project_id: str, mode: str, message_id: str, at: int) -> None:
    await conn.execute(
        update(webhook_messages)
        .where(_message_key(project_id, mode, message_id))
        .values(status="pending", next_attempt_at=at)
    )
