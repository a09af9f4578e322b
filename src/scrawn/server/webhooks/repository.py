"""All SQL on the webhook tables: endpoints (secrets sealed), the outbox and its delivery log. Rows leave as
the values of ``webhooks/types.py``; ``updated_at`` of an endpoint is stamped here."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.clock import now_ms
from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import ids_matching, project_deletes, typed
from scrawn.server.db.schema import webhook_attempts, webhook_endpoints, webhook_messages
from scrawn.server.webhooks.types import DeliveryAttempt, DueMessage, Endpoint, OutboxMessage

# Endpoints ------------------------------------------------------------------------------------------------


def _endpoint_key(project_id: str, mode: str) -> ColumnElement[bool]:
    return (webhook_endpoints.c.project_id == project_id) & (webhook_endpoints.c.mode == mode)


async def endpoint(conn: AsyncConnection, project_id: str, mode: str) -> Endpoint | None:
    """The mode's endpoint, secrets still sealed."""
    row = (await conn.execute(select(webhook_endpoints).where(_endpoint_key(project_id, mode)))).first()
    return None if row is None else typed(Endpoint, row)


async def has_endpoint(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    found = await conn.scalar(select(webhook_endpoints.c.url).where(_endpoint_key(project_id, mode)))
    return found is not None


async def insert_endpoint(
    conn: AsyncConnection, project_id: str, mode: str, url: str, secret: str, signing_key: str
) -> int | None:
    """A new endpoint (secrets sealed); returns when it was created, or None when a concurrent first write
    already created it."""
    now = now_ms()
    inserted = await conn.execute(
        dialect_insert(conn, webhook_endpoints)
        .values(
            project_id=project_id,
            mode=mode,
            url=url,
            secret=secret,
            signing_key=signing_key,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    return now if inserted.rowcount else None


async def update_endpoint(
    conn: AsyncConnection, project_id: str, mode: str, url: str, secret: str, signing_key: str
) -> int:
    """Change the endpoint (secrets sealed); returns its new ``updated_at``."""
    now = now_ms()
    await conn.execute(
        update(webhook_endpoints)
        .where(_endpoint_key(project_id, mode))
        .values(url=url, secret=secret, signing_key=signing_key, updated_at=now)
    )
    return now


async def delete_endpoint(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    """True when there was one."""
    result = await conn.execute(delete(webhook_endpoints).where(_endpoint_key(project_id, mode)))
    return bool(result.rowcount)


# The outbox -----------------------------------------------------------------------------------------------


def _message_key(project_id: str, mode: str, message_id: str) -> ColumnElement[bool]:
    return (
        (webhook_messages.c.project_id == project_id)
        & (webhook_messages.c.mode == mode)
        & (webhook_messages.c.id == message_id)
    )


async def insert_message(conn: AsyncConnection, message: OutboxMessage) -> None:
    await conn.execute(webhook_messages.insert().values(**asdict(message)))


async def count_pending(conn: AsyncConnection) -> int:
    """Messages still to deliver, over every project (the ``/metrics`` gauge)."""
    pending = await conn.scalar(
        select(func.count())
        .select_from(webhook_messages)
        # next_attempt_at is set on every pending row: lets the due index narrow the scan.
        .where(webhook_messages.c.status == "pending")
        .where(webhook_messages.c.next_attempt_at.is_not(None))
    )
    return int(pending or 0)


async def due_messages(conn: AsyncConnection, now: int, limit: int) -> list[DueMessage]:
    """Pending messages due at ``now``, the longest due first."""
    m = webhook_messages.c
    query = (
        select(m.project_id, m.mode, m.id, m.next_attempt_at)
        .where(m.status == "pending", m.next_attempt_at <= now)
        .order_by(m.next_attempt_at)
        .limit(limit)
    )
    return [typed(DueMessage, row) for row in await conn.execute(query)]


async def claim(conn: AsyncConnection, due: DueMessage, lease_until: int) -> bool:
    """Lease a due message until ``lease_until``; False when another process claimed it first (its
    ``next_attempt_at`` is no longer the one seen)."""
    result = await conn.execute(
        update(webhook_messages)
        .where(
            _message_key(due.project_id, due.mode, due.id),
            webhook_messages.c.status == "pending",
            webhook_messages.c.next_attempt_at == due.next_attempt_at,
        )
        .values(next_attempt_at=lease_until)
    )
    return result.rowcount == 1


async def release(
    conn: AsyncConnection, project_id: str, mode: str, message_id: str, lease_until: int, at: int
) -> None:
    """Hand a leased message back, due at ``at``, if the lease is still this one."""
    await conn.execute(
        update(webhook_messages)
        .where(
            _message_key(project_id, mode, message_id),
            webhook_messages.c.status == "pending",
            webhook_messages.c.next_attempt_at == lease_until,
        )
        .values(next_attempt_at=at)
    )


async def message(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> OutboxMessage | None:
    query = select(webhook_messages).where(_message_key(project_id, mode, message_id))
    row = (await conn.execute(query)).first()
    return None if row is None else typed(OutboxMessage, row)


async def lock_message(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> OutboxMessage:
    """The message, locked for the rest of the transaction (``FOR UPDATE``; SQLite's write transaction is
    the lock already)."""
    query = select(webhook_messages).where(_message_key(project_id, mode, message_id)).with_for_update()
    return typed(OutboxMessage, (await conn.execute(query)).one())


async def list_messages(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    status: str | None,
    limit: int,
    *,
    after: tuple[int, str] | None = None,
) -> list[OutboxMessage]:
    """The newest first (``created_at`` descending, then ``id``), only those after the ``after`` row in that
    order when given (the dashboard's keyset pages, along ``ix_webhook_messages_created``)."""
    m = webhook_messages.c
    query = select(webhook_messages).where(m.project_id == project_id, m.mode == mode)
    if status is not None:
        query = query.where(m.status == status)
    if after is not None:
        at, message_id = after
        query = query.where(or_(m.created_at < at, and_(m.created_at == at, m.id > message_id)))
    query = query.order_by(m.created_at.desc(), m.id).limit(limit)
    return [typed(OutboxMessage, row) for row in await conn.execute(query)]


async def mark_delivered(
    conn: AsyncConnection, project_id: str, mode: str, message_id: str, attempts: int, at: int
) -> None:
    await conn.execute(
        update(webhook_messages)
        .where(_message_key(project_id, mode, message_id))
        .values(attempts=attempts, last_error=None, status="delivered", delivered_at=at, next_attempt_at=None)
    )


async def mark_failed_attempt(
    conn: AsyncConnection, project_id: str, mode: str, message_id: str, attempts: int, error: str | None
) -> None:
    """Count a failed attempt and keep the schedule (a replay meanwhile already set it)."""
    await conn.execute(
        update(webhook_messages)
        .where(_message_key(project_id, mode, message_id))
        .values(attempts=attempts, last_error=error)
    )


async def schedule_retry(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    message_id: str,
    attempts: int,
    error: str | None,
    retry_at: int | None,
) -> None:
    """Count a failed attempt and try again at ``retry_at``; None gives the message up (``failed``)."""
    values: dict[str, object] = {"attempts": attempts, "last_error": error, "next_attempt_at": retry_at}
    if retry_at is None:
        values["status"] = "failed"
    await conn.execute(
        update(webhook_messages).where(_message_key(project_id, mode, message_id)).values(**values)
    )


async def requeue(conn: AsyncConnection, project_id: str, mode: str, message_id: str, at: int) -> None:
    """Pending again, due at ``at`` (a replay)."""
    await conn.execute(
        update(webhook_messages)
        .where(_message_key(project_id, mode, message_id))
        .values(status="pending", next_attempt_at=at)
    )


# The delivery log ------------------------------------------------------------------------------------------


async def insert_attempt(conn: AsyncConnection, attempt: DeliveryAttempt) -> None:
    await conn.execute(webhook_attempts.insert().values(**asdict(attempt)))


async def attempts(
    conn: AsyncConnection, project_id: str, mode: str, message_id: str
) -> list[DeliveryAttempt]:
    query = (
        select(webhook_attempts)
        .where(
            webhook_attempts.c.project_id == project_id,
            webhook_attempts.c.mode == mode,
            webhook_attempts.c.message_id == message_id,
        )
        .order_by(webhook_attempts.c.attempt)
    )
    return [typed(DeliveryAttempt, row) for row in await conn.execute(query)]


async def count_by_status(conn: AsyncConnection, project_id: str, mode: str) -> dict[str, int]:
    """The mode's messages by status (pending, delivered, failed): ``scrawn doctor``'s reading."""
    m = webhook_messages.c
    query = (
        select(m.status, func.count()).where(m.project_id == project_id, m.mode == mode).group_by(m.status)
    )
    return {status: int(count) for status, count in await conn.execute(query)}


async def message_ids_matching(conn: AsyncConnection, project_id: str, mode: str, given: str) -> list[str]:
    """The mode's outbox message ids equal to ``given`` or starting with it."""
    where = (webhook_messages.c.project_id == project_id, webhook_messages.c.mode == mode)
    return list(await conn.scalars(ids_matching(webhook_messages.c.id, given, *where)))


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's webhook endpoints, messages and attempts; how many rows went."""
    deletes = project_deletes(project_id, webhook_attempts, webhook_messages, webhook_endpoints)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
