"""The quarantine's typed values: a kept event as stored, and the part of it a retry is answered from."""

from __future__ import annotations

from dataclasses import dataclass

Cursor = tuple[int, str]  # (received_at, id): the waiting list's order


@dataclass(frozen=True)
class KeptKey:
    """A kept event found by its idempotency key: enough to answer a retry."""

    id: str
    fingerprint: str
    field: str
    reason: str


@dataclass(frozen=True)
class KeptEvent:
    """A ``quarantined_events`` row, every column."""

    project_id: str
    mode: str
    id: str  # the event id it will be stored under once priced
    idempotency_key: str
    fingerprint: str
    event_type: str
    user_id: str
    reported_at: int  # Unix seconds
    received_at: int  # Unix ms
    input: str  # JSON: the validated event (``EventInput.to_json``)
    reason_code: str
    field: str
    reason: str
    attempts: int
    last_attempt_at: int | None
    repriced_at: int | None

    @property
    def cursor(self) -> Cursor:
        return (self.received_at, self.id)
