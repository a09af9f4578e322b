"""``client.void_event(...)`` on Scrawn and AsyncScrawn against a real server (SQLite and PostgreSQL): the
typed result, idempotency, lookup by idempotency key, and validation before anything is sent."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, Scrawn, VoidedEvent
from scrawn.errors import NotFoundError, ValidationError
from tests.sdk.conftest import balances_of

SOME_ID = "0b6c9f57-4c1e-4f0e-9a35-3f3f6b1c2d4e"  # fixed: test ids must be the same on every xdist worker


def prefix() -> str:
    return f"sdkvoid-{uuid.uuid4().hex[:8]}-"


def test_void_event_sync(module_server: Any) -> None:
    user = prefix() + "u"
    with Scrawn(api_key=module_server.live_key, base_url=module_server.base_url) as client:
        kept = client.basic_usage_event_consumer(user_id=user, debit=100)
        wrong = client.basic_usage_event_consumer(
            user_id=user, debit=Decimal("0.333333"), idempotency_key=f"{user}-k"
        )
        done = client.void_event(event_id=wrong.event_id, reason="double charge")
        assert isinstance(done, VoidedEvent)
        assert (done.event_id, done.idempotency_key, done.user_id) == (wrong.event_id, f"{user}-k", user)
        assert done.amount == Decimal("0.333333") and not done.already_voided
        assert done.reason == "double charge" and done.voided_by and done.reversal_entry_id
        assert done.voided_at is not None and done.voided_at.tzinfo is not None
        again = client.void_event(idempotency_key=f"{user}-k", reason="once more")
        assert again.already_voided and again.reversal_entry_id == done.reversal_entry_id
        assert (again.reason, again.voided_at) == ("double charge", done.voided_at)
        with pytest.raises(NotFoundError) as missing:
            client.void_event(event_id=str(uuid.uuid4()), reason="x")
        assert missing.value.message == "eventId: event not found"
    assert balances_of(module_server, user_prefix=user) == {user: Decimal(-100)}
    assert kept.ok


def test_void_event_async(module_server: Any) -> None:
    user = prefix() + "a"

    async def main() -> tuple[VoidedEvent, VoidedEvent]:
        async with AsyncScrawn(api_key=module_server.test_key, base_url=module_server.base_url) as client:
            event = await client.basic_usage_event_consumer(user_id=user, debit=7)
            first = await client.void_event(event_id=event.event_id, reason="test traffic")
            second = await client.void_event(event_id=event.event_id, reason="test traffic")
            return first, second

    first, second = asyncio.run(main())
    assert (first.amount, first.already_voided, second.already_voided) == (Decimal(7), False, True)
    assert balances_of(module_server, user_prefix=user) == {user: Decimal(0)}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": "r"}, "event_id"),
        ({"event_id": SOME_ID, "idempotency_key": "k", "reason": "r"}, "event_id"),
        ({"event_id": "nope", "reason": "r"}, "event_id"),
        ({"event_id": 5, "reason": "r"}, "event_id"),
        ({"idempotency_key": "", "reason": "r"}, "idempotency_key"),
        ({"idempotency_key": "k" * 256, "reason": "r"}, "idempotency_key"),
        ({"event_id": SOME_ID, "reason": ""}, "reason"),
        ({"event_id": SOME_ID, "reason": "r" * 256}, "reason"),
        ({"event_id": SOME_ID, "reason": "a\x00b"}, "reason"),
    ],
)
def test_void_event_is_validated_before_sending(closed_url: str, kwargs: dict[str, Any], field: str) -> None:
    client = Scrawn(api_key="scrn_live_" + "A" * 32, base_url=closed_url, max_retries=0)
    with client, pytest.raises(ValidationError) as e:
        client.void_event(**kwargs)
    assert e.value.field == field and e.value.message.startswith(f"Void validation failed: {field}: ")
