"""Read the outbox and its delivery log, and replay a message (same id: the receiver can dedupe)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError, ValidationError
from scrawn.server.api_support import answer_json
from scrawn.server.clock import iso, now_ms
from scrawn.server.webhooks import repository
from scrawn.server.webhooks.types import DeliveryAttempt, OutboxMessage

STATUSES = ("pending", "delivered", "failed")
MAX_LIMIT = 500
# The answers' keys, in order (``webhooks/api.py`` declares their schemas).
MESSAGE_KEYS = (
    "id",
    "type",
    "mode",
    "status",
    "attempts",
    "nextAttemptAt",
    "deliveredAt",
    "lastError",
    "createdAt",
    "payload",
)
ATTEMPT_KEYS = ("attempt", "url", "statusCode", "error", "durationMs", "attemptedAt", "responseBody")


def check_status(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in STATUSES:
        raise ValidationError("status", "must be pending, delivered or failed")
    return value


def check_limit(value: str | int | None, default: int = 50) -> int:
    if value in (None, ""):
        return default
    try:
        limit = int(value)
    except ValueError:
        raise ValidationError("limit", "must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


list_messages = repository.list_messages  # newest first, in keyset pages


async def get_message(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> OutboxMessage:
    row = await repository.message(conn, project_id, mode, message_id)
    if row is None:
        raise NotFoundError(f"webhook message not found: {message_id}", field="id")
    return row


async def attempts_of(
    conn: AsyncConnection, project_id: str, mode: str, message_id: str
) -> list[DeliveryAttempt]:
    await get_message(conn, project_id, mode, message_id)
    return await repository.attempts(conn, project_id, mode, message_id)


async def replay(conn: AsyncConnection, project_id: str, mode: str, message_id: str) -> OutboxMessage:
    """Queue the message again now, under the same id; its attempts so far are kept (and logged)."""
    await get_message(conn, project_id, mode, message_id)
    await repository.requeue(conn, project_id, mode, message_id, now_ms())
    return await get_message(conn, project_id, mode, message_id)


def message_json(row: OutboxMessage) -> dict[str, Any]:
    return answer_json(
        row,
        MESSAGE_KEYS,
        nextAttemptAt=iso(row.next_attempt_at) or None,
        deliveredAt=iso(row.delivered_at) or None,
        createdAt=iso(row.created_at),
        payload=json.loads(row.payload),
    )


def attempt_json(row: DeliveryAttempt) -> dict[str, Any]:
    return answer_json(row, ATTEMPT_KEYS, attemptedAt=iso(row.attempted_at))
