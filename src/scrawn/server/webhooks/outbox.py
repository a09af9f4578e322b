"""The outbound webhook outbox (docs/webhooks.md): a message is written in the same transaction as the
ledger change it reports, so it exists exactly when the change does; the deliverer sends it later, with
retries, always under the same ``webhook-id``."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.clock import iso, now_ms
from scrawn.server.webhooks import repository
from scrawn.server.webhooks.types import OutboxMessage

EVENT_TYPES = (
    "payment.succeeded",
    "payment.failed",
    "payment.refunded",
    "balance.low",
    "reservation.expired",
)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


async def enqueue(
    conn: AsyncConnection, project_id: str, mode: str, type_: str, data: dict[str, Any]
) -> str | None:
    """Queue ``type_`` with ``data`` (JSON-ready: amounts as decimal strings) for the project's endpoint in
    this mode. Returns the message id, or None when the project has no endpoint (nothing is queued)."""
    assert type_ in EVENT_TYPES, type_
    if not await repository.has_endpoint(conn, project_id, mode):
        return None
    now = now_ms()
    message_id = new_message_id()
    body = {
        "type": type_,
        "timestamp": iso(now),
        "data": {"mode": mode, **data},
    }
    await repository.insert_message(
        conn,
        OutboxMessage(
            project_id=project_id,
            mode=mode,
            id=message_id,
            type=type_,
            payload=json.dumps(body, separators=(",", ":"), sort_keys=True),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            delivered_at=None,
            last_error=None,
            created_at=now,
        ),
    )
    return message_id
