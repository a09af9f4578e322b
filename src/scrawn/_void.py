"""Sans-I/O ``event.v1.EventService/VoidEvent`` (docs/events.md#voiding-an-event): validated before anything
is sent. Safe to retry as is: voiding is idempotent on the server (a second void answers
``already_voided``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from scrawn._proto.event.v1 import event_pb2 as pb
from scrawn._retry import Rpc
from scrawn._wallet_results import from_wire, time_of_ms
from scrawn.errors import ValidationError

PATH: Final = "/event.v1.EventService/VoidEvent"
CONTEXT: Final = "Void validation failed"
MAX_REASON: Final = 255
MAX_KEY: Final = 255


@dataclass(frozen=True)
class VoidedEvent:
    """A voided event: its debit was credited back by one reversing ledger entry (``reversal_entry_id``).
    ``already_voided`` is True when an earlier call had voided it; the fields are that first void's."""

    event_id: str
    idempotency_key: str
    user_id: str
    amount: Decimal  # what the reversal credited back, minor units
    voided_at: datetime | None
    voided_by: str  # the API key id that voided it ("cli" for `scrawn events void`)
    reason: str
    already_voided: bool
    reversal_entry_id: str


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


def _text(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise _fail(field, "must be a non-empty string")
    if len(value) > limit or "\x00" in value:
        raise _fail(field, f"must be at most {limit} characters, without NUL")
    return value


def void_event(event_id: object, idempotency_key: object, reason: object) -> Rpc[VoidedEvent]:
    """Exactly one of ``event_id`` (a UUID) and ``idempotency_key``, and a ``reason``."""
    if (event_id is None) == (idempotency_key is None):
        raise _fail("event_id", "give exactly one of event_id or idempotency_key")
    request = pb.VoidEventRequest(reason=_text("reason", reason, MAX_REASON))
    if event_id is not None:
        text = _text("event_id", event_id, 36)
        try:
            request.eventId = str(uuid.UUID(text))
        except ValueError:
            raise _fail("event_id", "must be a UUID") from None
    else:
        request.idempotencyKey = _text("idempotency_key", idempotency_key, MAX_KEY)
    return Rpc("void_event", PATH, request, pb.VoidEventResponse, _voided)


def _voided(message: pb.VoidEventResponse) -> VoidedEvent:
    return from_wire(VoidedEvent, message, voided_at=time_of_ms(message.voidedTimestamp))
