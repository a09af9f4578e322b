"""Every SDK call, sync and async, against a real ``scrawn serve`` on SQLite and PostgreSQL, checking
what the server stored and billed."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest

from scrawn import AsyncScrawn, EventResult, Scrawn, add, div, expr, mul, scrawn, sub, tag
from scrawn.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from tests.sdk.conftest import (
    LIVE_SHAPED_KEY,
    balances_of,
    put_event_price,
    put_expression,
    put_tag,
    stored_events,
)


@pytest.fixture(scope="module")
def priced(module_server: Any) -> Any:
    put_tag(module_server, "SDK_CALL", "2.5")
    put_tag(module_server, "SDK_PAGE", "0.3")
    put_expression(module_server, "SDK_BASE", "add(tag(SDK_CALL),1)")
    put_event_price(module_server, "sdk.document", "mul(quantity(),tag(SDK_PAGE))")
    return module_server


def prefix() -> str:
    return f"sdk-{uuid.uuid4().hex[:10]}-"


# (debit as passed, what the server must bill, how it travels)
DEBITS: list[tuple[Any, Decimal, str]] = [
    (7, Decimal(7), "amount"),
    (0, Decimal(0), "amount"),
    (Decimal("2.50"), Decimal("2.5"), "expr"),
    ("1.25", Decimal("1.25"), "expr"),
    (0.1, Decimal("0.1"), "expr"),
    (12.0, Decimal(12), "amount"),
    (3_000_000_000, Decimal(3_000_000_000), "expr"),  # beyond int32: travels as expression text
    (tag("SDK_CALL"), Decimal("2.5"), "tag"),
    (mul(tag("SDK_CALL"), 3), Decimal("7.5"), "expr"),
    (add(mul(tag("SDK_CALL"), 3), tag("SDK_PAGE"), 250), Decimal("257.8"), "expr"),
    (sub(10, 2.5, "0.5"), Decimal(7), "expr"),
    (div(10, 4), Decimal("2.5"), "expr"),
    (expr("SDK_BASE"), Decimal("3.5"), "expr"),
    (mul(expr("SDK_BASE"), 2), Decimal(7), "expr"),
]


def _check_stored(server: Any, p: str, results: list[EventResult], expected: list[Decimal]) -> None:
    rows = {r.idempotency_key: r for r in stored_events(server, user_prefix=p)}
    assert len(rows) == len(results)
    for result, want in zip(results, expected, strict=True):
        row = rows[result.idempotency_key]
        assert row.event_id == result.event_id
        assert row.debit == want, (row, want)
        assert row.event_type == "BASIC_USAGE" and row.basic_usage_type == "RAW"
    total = sum(expected, Decimal(0))
    assert sum(balances_of(server, user_prefix=p).values(), Decimal(0)) == -total


def test_basic_usage_every_debit_kind_sync(priced: Any) -> None:
    p = prefix()
    with Scrawn(priced.live_key, priced.base_url) as client:
        results = [client.basic_usage_event_consumer(user_id=p + "u", debit=d) for d, _, _ in DEBITS]
    assert all(r.ok and not r.duplicate and r.event_id for r in results)
    _check_stored(priced, p, results, [want for _, want, _ in DEBITS])


async def test_basic_usage_every_debit_kind_async(priced: Any) -> None:
    p = prefix()
    async with AsyncScrawn(priced.live_key, priced.base_url) as client:
        results = await asyncio.gather(
            *(client.basic_usage_event_consumer(user_id=p + "u", debit=d) for d, _, _ in DEBITS)
        )
    assert all(r.ok and not r.duplicate for r in results)
    await asyncio.to_thread(_check_stored, priced, p, list(results), [want for _, want, _ in DEBITS])


def test_metadata_event_id_and_idempotency_sync(priced: Any) -> None:
    p = prefix()
    event_id = str(uuid.uuid4())
    client = scrawn(api_key=priced.live_key, base_url=priced.base_url)
    try:
        first = client.basic_usage_event_consumer(
            user_id=p + "u",
            debit=5,
            metadata={"route": "/v1/pdf", "pages": 3, "ü": "ñ"},
            event_id=event_id,
            idempotency_key=p + "key",
        )
        again = client.basic_usage_event_consumer(
            user_id=p + "u",
            debit=5,
            metadata={"route": "/v1/pdf", "pages": 3, "ü": "ñ"},
            event_id=event_id,
            idempotency_key=p + "key",
        )
        with pytest.raises(AlreadyExistsError) as conflict:
            client.basic_usage_event_consumer(user_id=p + "u", debit=6, idempotency_key=p + "key")
    finally:
        client.close()
    assert first.event_id == event_id and not first.duplicate
    assert again.event_id == event_id and again.duplicate
    assert conflict.value.field == "idempotencyKey" and conflict.value.code == "already_exists"
    [row] = stored_events(priced, user_prefix=p)
    assert json.loads(row.metadata or "") == {"route": "/v1/pdf", "pages": 3, "ü": "ñ"}
    assert row.debit == 5 and row.idempotency_key == p + "key"
    assert balances_of(priced, user_prefix=p) == {p + "u": Decimal(-5)}


async def test_metadata_event_id_and_idempotency_async(priced: Any) -> None:
    p = prefix()
    async with AsyncScrawn(priced.live_key, priced.base_url) as client:
        first = await client.basic_usage_event_consumer(
            user_id=p + "u", debit="0.000001", metadata='{"a": [1, 2]}', idempotency_key=p + "k"
        )
        again = await client.basic_usage_event_consumer(
            user_id=p + "u", debit="0.000001", metadata='{"a": [1, 2]}', idempotency_key=p + "k"
        )
        with pytest.raises(AlreadyExistsError):
            await client.basic_usage_event_consumer(user_id=p + "u", debit=1, idempotency_key=p + "k")
    assert again.duplicate and again.event_id == first.event_id
    [row] = await asyncio.to_thread(stored_events, priced, user_prefix=p)
    assert row.debit == Decimal("0.000001") and json.loads(row.metadata or "") == {"a": [1, 2]}


def test_server_errors_are_typed_sync(priced: Any) -> None:
    p = prefix()
    with (
        Scrawn(priced.live_key, priced.base_url) as client,
        pytest.raises(FailedPreconditionError) as unknown_tag,  # kept for repricing, not billed yet
    ):
        client.basic_usage_event_consumer(user_id=p + "u", debit=tag("SDK_NO_SUCH_TAG"))
    assert unknown_tag.value.field == "basicUsage.tag"
    assert "Tag not found: SDK_NO_SUCH_TAG" in unknown_tag.value.message
    with Scrawn(priced.dash_key, priced.base_url) as dash, pytest.raises(PermissionDeniedError):
        dash.basic_usage_event_consumer(user_id=p + "u", debit=1)
    with Scrawn(LIVE_SHAPED_KEY, priced.base_url) as unknown, pytest.raises(UnauthenticatedError) as e:
        unknown.basic_usage_event_consumer(user_id=p + "u", debit=1)
    assert e.value.message == "Invalid API key: API key not found"
    assert stored_events(priced, user_prefix=p) == []


async def test_server_errors_are_typed_async(priced: Any) -> None:
    async with AsyncScrawn(LIVE_SHAPED_KEY, priced.base_url) as unknown:
        with pytest.raises(UnauthenticatedError):
            await unknown.basic_usage_event_consumer(user_id="x", debit=1)
        with pytest.raises(UnauthenticatedError):
            await unknown.create_event(type="sdk.document", customer_ref="x")


def test_test_key_writes_test_mode(priced: Any) -> None:
    p = prefix()
    with Scrawn(priced.test_key, priced.base_url) as client:
        client.basic_usage_event_consumer(user_id=p + "u", debit=3)

    async def modes() -> list[str]:
        from sqlalchemy import select

        from scrawn.server.db.schema import events

        db = priced.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(select(events.c.mode).where(events.c.user_id == p + "u"))
                return [r.mode for r in rows]
        finally:
            await db.dispose()

    assert asyncio.run(modes()) == ["test"]


# ------------------------------------------------------------------------------------- create_event


def test_create_event_typed_and_priced_sync(priced: Any) -> None:
    p = prefix()
    with Scrawn(priced.live_key, priced.base_url) as client:
        doc = client.create_event(
            type="sdk.document",
            customer_ref=p + "c",
            units=3,
            product_ref="pdf",
            metadata={"file": "a.pdf"},
            idempotency_key=p + "doc",
        )
        same = client.create_event(
            type="sdk.document",
            customer_ref=p + "c",
            units=3,
            product_ref="pdf",
            metadata={"file": "a.pdf"},
            idempotency_key=p + "doc",
        )
        free = client.create_event(type="sdk.unpriced", customer_ref=p + "c")
        fractional = client.create_event(type="sdk.document", customer_ref=p + "c", units=Decimal("0.5"))
    assert doc.amount == Decimal("0.9") and not doc.duplicate and doc.event_id
    assert same.duplicate and same.event_id == doc.event_id
    assert free.amount == 0 and fractional.amount == Decimal("0.15")
    rows = {r.event_id: r for r in stored_events(priced, user_prefix=p)}
    assert {r.event_type for r in rows.values()} == {"TYPED"}
    assert rows[doc.event_id].debit == Decimal("0.9") and json.loads(rows[doc.event_id].metadata or "") == {
        "file": "a.pdf"
    }
    assert len(rows) == 3
    assert balances_of(priced, user_prefix=p) == {p + "c": Decimal("-1.05")}


async def test_create_event_typed_and_priced_async(priced: Any) -> None:
    p = prefix()
    async with AsyncScrawn(priced.live_key, priced.base_url) as client:
        doc = await client.create_event(type="sdk.document", customer_ref=p + "c", units="10")
        with pytest.raises(AlreadyExistsError) as conflict:
            await client.create_event(
                type="sdk.document", customer_ref=p + "c", units=1, idempotency_key=doc.idempotency_key
            )
    assert doc.amount == Decimal(3)
    assert conflict.value.field == "idempotencyKey"
    assert await asyncio.to_thread(balances_of, priced, user_prefix=p) == {p + "c": Decimal(-3)}
