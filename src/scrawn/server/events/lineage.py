"""One event's lineage, the answer to "why was this charged what it was?": the prices that applied (the
pricing record kept with the event), the token arithmetic of an AI event, the ledger entry that billed it
and, once voided, its reversal. The dashboard's event page and ``scrawn explain`` both show this."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import NotFoundError
from scrawn.server.events import repository, void_service
from scrawn.server.events.types import EventRecord
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import Entry

TOKENS = (
    ("Input", "input_tokens", "input_debit"),
    ("Output", "output_tokens", "output_debit"),
    ("Input cache", "input_cache_tokens", "input_cache_debit"),
    ("Output cache", "output_cache_tokens", "output_cache_debit"),
)


class TokenLine(NamedTuple):
    label: str
    tokens: int
    debit: Decimal | None


@dataclass(frozen=True)
class Lineage:
    event: EventRecord
    pricing: dict[str, Any]  # what priced it: tag versions, expression text, model prices, USD rate
    metadata: Any | None
    tokens: list[TokenLine]  # AI events: each token kind counted and what it was charged
    entry: Entry | None  # the usage ledger entry (none for an event charged nothing)
    reversal: str | None  # who voided it, when and why, and the reversing entry


async def lineage(conn: AsyncConnection, project_id: str, mode: str, event_id: str) -> Lineage:
    row = await repository.get(conn, project_id, mode, event_id)
    if row is None:
        raise NotFoundError(f"event not found: {event_id}", field="id")
    reversal = await void_service.describe(conn, project_id, mode, row) if row.voided_at else None
    return Lineage(
        event=row,
        pricing=json.loads(str(row.pricing)),
        metadata=json.loads(str(row.metadata)) if row.metadata else None,
        tokens=[
            TokenLine(label, getattr(row, count), getattr(row, debit))
            for label, count, debit in TOKENS
            if getattr(row, count) is not None
        ],
        entry=await ledger.usage_entry_of(conn, project_id, mode, row.user_id, row.id),
        reversal=reversal,
    )
