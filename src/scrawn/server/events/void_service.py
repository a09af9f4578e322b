"""Voiding an event (docs/events.md#voiding-an-event): one reversing ledger entry, exactly once.

The event row stays (its idempotency key stays taken, so re-sending the original is a duplicate, not a new
charge); it gets who voided it, when and why. A ``void`` ledger entry credits its debit back and the user's
balance row moves by the same amount in the same transaction, so the balance is restored exactly. The event
row is locked first (then the balance row, the order every other writer uses too), so concurrent voids of
one event write one reversal; the others answer ``already_voided`` with the first void's data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError, NotFoundError, OutOfRangeError, ValidationError
from scrawn.money import MAX_MICROS, format_amount, to_micros
from scrawn.server.clock import iso
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository, rollup
from scrawn.server.events.types import EventRecord, VoidableEvent
from scrawn.server.keys.service import KeyService
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry

MAX_REASON = 255
MAX_KEY = 255
CONTEXT = "Void validation failed"
CLI_ACTOR = "cli"  # ``voided_by`` of a void made with ``scrawn events void`` (no API key involved)
REVERSAL_KIND = "void"


def reversal_key(event_id: str) -> str:
    """The reversing entry's idempotency key: one reversal per event, enforced by the ledger's unique key."""
    return f"void:{event_id}"


@dataclass(frozen=True)
class VoidTarget:
    """Exactly one of the two: the event's id or its idempotency key."""

    event_id: str | None = None
    idempotency_key: str | None = None

    @property
    def field(self) -> str:
        return "eventId" if self.event_id is not None else "idempotencyKey"


@dataclass(frozen=True)
class Voided:
    event_id: str
    idempotency_key: str
    user_id: str
    amount: Decimal  # what the reversal credited back, minor units
    voided_at: int  # Unix ms of the (first) void
    voided_by: str  # the API key id, or "cli"
    reason: str
    already_voided: bool
    reversal_entry_id: str


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


def check_target(event_id: str, idempotency_key: str) -> VoidTarget:
    if event_id and idempotency_key:
        raise _fail("idempotencyKey", "give eventId or idempotencyKey, not both")
    if event_id:
        try:
            return VoidTarget(event_id=str(uuid.UUID(event_id)))
        except ValueError:
            raise _fail("eventId", "must be a UUID") from None
    if idempotency_key:
        if len(idempotency_key) > MAX_KEY or "\x00" in idempotency_key:
            raise _fail("idempotencyKey", f"must be at most {MAX_KEY} characters, without NUL")
        return VoidTarget(idempotency_key=idempotency_key)
    raise _fail("eventId", "one of eventId or idempotencyKey is required")


def check_reason(reason: str, field: str = "reason") -> str:
    if not reason or not reason.strip():
        raise _fail(field, "is required: say why the event is voided")
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise _fail(field, f"must be at most {MAX_REASON} characters, without NUL")
    return reason


async def void_event(
    conn: AsyncConnection, project_id: str, mode: str, target: VoidTarget, reason: str, by: str
) -> Voided:
    """Void the event in the caller's write transaction (committed by the caller)."""
    row = await repository.lock_for_void(
        conn, project_id, mode, event_id=target.event_id, idempotency_key=target.idempotency_key
    )
    if row is None:
        raise NotFoundError(f"{target.field}: event not found", field=target.field)
    if row.voided_at is not None:
        return await _first_void(conn, project_id, mode, row)
    now = now_ms()
    balance = await ledger.lock_existing(conn, project_id, mode, row.user_id)
    before = to_micros(balance.balance) if balance is not None else 0
    if before + to_micros(row.debit) > MAX_MICROS:
        raise OutOfRangeError(
            f"{target.field}: crediting this event back would take the user's balance past the storable "
            "range; nothing was changed",
            field=target.field,
        )
    if not await repository.mark_voided(conn, project_id, mode, row.id, by=by, reason=reason, now=now):
        raise RuntimeError(f"event {row.id} was voided under our lock")  # rolls back: never guess
    reversal = LedgerEntry(
        project_id,
        mode,
        row.user_id,
        REVERSAL_KIND,
        row.debit,
        event_id=row.id,
        idempotency_key=reversal_key(row.id),
        description=reason,
    )
    entry_id = await ledger.post_reversal(conn, reversal, balance, spent_at=row.ingested_at, now=now)
    if entry_id is None:  # a wallet transaction chose this event's reversal key as its own
        raise FailedPreconditionError(
            f"{target.field}: the ledger key {reversal_key(row.id)} is taken by another "
            "transaction; nothing was changed",
            field=target.field,
        )
    await rollup.voided(conn, project_id, mode, row.ingested_at, row.debit)
    return Voided(row.id, row.idempotency_key, row.user_id, row.debit, now, by, reason, False, entry_id)


async def _first_void(conn: AsyncConnection, project_id: str, mode: str, row: VoidableEvent) -> Voided:
    assert row.voided_at is not None
    entry = await ledger.find_entry(conn, project_id, mode, reversal_key(row.id))
    return Voided(
        row.id,
        row.idempotency_key,
        row.user_id,
        entry.amount if entry is not None else row.debit,
        row.voided_at,
        row.voided_by or "",
        row.void_reason or "",
        True,
        entry.id if entry is not None else "",
    )


async def describe(conn: AsyncConnection, project_id: str, mode: str, row: EventRecord) -> str:
    """Who voided an event, when and why, and its reversing entry (``scrawn explain``)."""
    assert row.voided_at is not None
    who = "the CLI (scrawn events void)" if row.voided_by == CLI_ACTOR else f"key {row.voided_by}"
    if row.voided_by != CLI_ACTOR:
        key = next((k for k in await KeyService.list_keys(conn, project_id) if k.id == row.voided_by), None)
        who += f" {key.name} ({key.role} key)" if key else " (since deleted)"
    entry = await ledger.find_entry(conn, project_id, mode, reversal_key(row.id))
    credited = (
        f"reversal entry {entry.id} credited {format_amount(entry.amount)} back"
        if entry is not None
        else "no reversal entry found"
    )
    return f"VOIDED at {iso(row.voided_at)} by {who}: {row.void_reason!r}; {credited}"
