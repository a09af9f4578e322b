"""usage.v1.UsageService/TrackEvents: typed events priced by the project's event prices."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
from sqlalchemy import select

from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn.server.db.schema import balances, events
from tests.clients import TRACK, ConnectClient, GrpcClient, RpcError, bearer


def _item(**fields: object) -> usage.TrackedEvent:
    return usage.TrackedEvent(**{"type": "document.processed", "userId": "cust_1", **fields})  # type: ignore[arg-type]


def _stored(server) -> list:
    async def read() -> list:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(events).where(events.c.event_type == "TYPED").order_by(events.c.name)
                )
                bal = await conn.execute(select(balances.c.user_id, balances.c.balance))
                return [list(rows), {b.user_id: b.balance for b in bal}]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_typed_events_are_priced_by_event_price_and_deduplicated(server) -> None:
    dash = {"authorization": f"Bearer {server.dash_key}"}
    with httpx.Client(base_url=server.base_url) as http:
        assert (
            http.post("/api/v1/tags", json={"key": "PAGE", "price": "0.3"}, headers=dash).status_code == 201
        )
        res = http.post(
            "/api/v1/event-prices",
            headers=dash,
            json={"type": "document.processed", "expression": "mul(quantity(), tag(PAGE))"},
        )
        assert res.status_code == 201, res.text
        bad = http.post("/api/v1/event-prices", headers=dash, json={"type": "x y", "expression": "1"})
        assert bad.status_code == 400 and bad.json()["field"] == "type"
        listed = http.get("/api/v1/event-prices", headers=dash).json()["eventPrices"]
        assert [p["type"] for p in listed] == ["document.processed"]

    request = usage.TrackEventsRequest(
        events=[
            _item(quantity="3", idempotencyKey="k1", productRef="pdf"),
            _item(type="free.kind", quantity="", idempotencyKey="k2"),
            _item(quantity="-1"),
            _item(userId=""),
            _item(quantity="3", idempotencyKey="k1", productRef="pdf"),  # the same item again: a duplicate
            _item(quantity="2.5", idempotencyKey="k3"),
        ]
    )
    with GrpcClient(server.grpc_target) as client:
        res = client.unary(TRACK, request, bearer(server.live_key))
    assert (res.accepted, res.duplicates, res.failed) == (3, 1, 2)
    by_index = {r.index: r for r in res.results}
    assert by_index[0].status == "accepted" and by_index[0].amount == "0.9"
    assert by_index[1].status == "accepted" and by_index[1].amount == "0"  # no price for the type: free
    assert by_index[2].status == "failed" and "quantity" in by_index[2].message
    assert by_index[3].status == "failed" and "userId" in by_index[3].message
    assert by_index[4].status == "duplicate" and by_index[4].eventId == by_index[0].eventId
    assert by_index[5].amount == "0.75"

    rows, bal = _stored(server)
    assert sorted((r.name, r.quantity, r.debit) for r in rows) == [
        ("document.processed", "2.5", Decimal("0.75")),
        ("document.processed", "3", Decimal("0.9")),
        ("free.kind", "1", Decimal("0")),
    ]
    assert bal["cust_1"] == Decimal("-1.65")


def test_track_events_refuses_dash_keys_and_oversized_batches(server) -> None:
    with ConnectClient(server.base_url) as client:
        try:
            client.unary(TRACK, usage.TrackEventsRequest(events=[_item()]), bearer(server.dash_key))
            raise AssertionError("dash key accepted")
        except RpcError as e:
            assert (e.code, e.message) == ("permission_denied", "Dashboard keys cannot ingest events")
        try:
            client.unary(TRACK, usage.TrackEventsRequest(events=[_item()] * 1001), bearer(server.live_key))
            raise AssertionError("1001 items accepted")
        except RpcError as e:
            assert e.code == "invalid_argument" and "events" in e.message
