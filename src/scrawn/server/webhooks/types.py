"""The webhooks domain's values, as the repository returns them and the services use them."""

from __future__ import annotations

from dataclasses import dataclass

from scrawn.server.webhooks import signing


@dataclass(frozen=True)
class Endpoint:
    """A project's outbound endpoint in one mode. ``secret`` and ``signing_key`` are sealed as the
    repository returns them, and open once ``webhooks/endpoints.py`` has opened them."""

    project_id: str
    mode: str
    url: str
    secret: str  # whsec_… (v1)
    signing_key: str  # whsk_… (v1a, private: never shown)
    created_at: int
    updated_at: int

    @property
    def public_key(self) -> str:
        return signing.public_key(self.signing_key)


@dataclass(frozen=True)
class OutboxMessage:
    """An outbound webhook message and where its delivery stands."""

    project_id: str
    mode: str
    id: str  # msg_…: the webhook-id every attempt carries
    type: str
    payload: str  # the exact JSON body sent
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: int | None  # None once delivered or given up
    delivered_at: int | None
    last_error: str | None
    created_at: int


@dataclass(frozen=True)
class DueMessage:
    """A pending message due now, as the deliverer first sees it (without its payload)."""

    project_id: str
    mode: str
    id: str
    next_attempt_at: int


@dataclass(frozen=True)
class DeliveryAttempt:
    """One line of the delivery log."""

    project_id: str
    mode: str
    message_id: str
    attempt: int
    url: str
    status_code: int | None  # None: no HTTP answer (refused, timed out)
    error: str | None
    duration_ms: int
    attempted_at: int
    response_body: str | None = None  # the first MAX_RESPONSE bytes of the answer, as text
