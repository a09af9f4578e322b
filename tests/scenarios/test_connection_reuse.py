"""Long-lived connections (DESIGN §1): hypercorn's default ``keep_alive_max_requests = 1000`` closes an
HTTP/2 connection after 1,000 requests and loses the calls in flight on it. The server raises it, so one
grpcio channel (one HTTP/2 connection) carries thousands of calls, sequential or concurrent."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.db.schema import balances, events
from tests.clients import REGISTER, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import ServerHandle, run_async

CALLS = 5000
CONCURRENCY = 16


def fetch(server: ServerHandle, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def request(prefix: str, i: int) -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId=f"{prefix}-user",
        idempotencyKey=f"{prefix}-{i}",
        basicUsage=ev.BasicUsage(amount=1),
    )


def call(client: GrpcClient, md: list[tuple[str, str]], prefix: str, i: int) -> str:
    """The outcome of one call: "ok" or the error, so that a failure says what went wrong."""
    try:
        res = client.unary(REGISTER, request(prefix, i), md)
    except RpcError as e:
        return f"{e.code}: {e.message}"
    return "ok" if res.idempotencyKey == f"{prefix}-{i}" and not res.duplicate else f"unexpected: {res}"


def assert_stored(server: ServerHandle, prefix: str) -> None:
    [(count, total)] = fetch(
        server,
        select(func.count(), func.sum(events.c.debit)).where(
            events.c.project_id == server.project_id, events.c.user_id == f"{prefix}-user"
        ),
    )
    assert count == CALLS
    assert total == CALLS
    [bal] = fetch(
        server,
        select(balances.c.balance).where(
            balances.c.project_id == server.project_id, balances.c.user_id == f"{prefix}-user"
        ),
    )
    assert bal.balance == Decimal(-CALLS)


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """SQLite only: the limit is hypercorn's, not the database's, and this keeps CI time down."""
    return f"sqlite:///{tmp_path / 'scrawn.db'}"


def test_5000_sequential_calls_on_one_channel(server: ServerHandle) -> None:
    md = bearer(server.live_key)
    with GrpcClient(server.grpc_target) as client:
        outcomes = Counter(call(client, md, "seq", i) for i in range(CALLS))
    assert outcomes == {"ok": CALLS}
    assert_stored(server, "seq")


def test_5000_calls_16_at_a_time_on_one_channel(server: ServerHandle) -> None:
    md = bearer(server.live_key)
    with GrpcClient(server.grpc_target) as client, ThreadPoolExecutor(CONCURRENCY) as pool:
        outcomes = Counter(pool.map(lambda i: call(client, md, "par", i), range(CALLS)))
    assert outcomes == {"ok": CALLS}
    assert_stored(server, "par")


def test_http1_keep_alive_connection_outlives_1000_requests(server: ServerHandle) -> None:
    """HTTP/1.1 keep-alive is under the same limit: past 1,000 requests the server must not close the
    connection. Cheap /healthz requests take it past 1,000; Connect calls on it before and after."""
    md = bearer(server.live_key)
    connections: set[int] = set()
    with ConnectClient(server.base_url, binary=True) as client:
        pool = client.http._transport._pool  # type: ignore[attr-defined]
        for i in range(1100):
            if i % 50 == 0:
                res = client.unary(REGISTER, request("h1", i), md)
                assert res.idempotencyKey == f"h1-{i}"
            else:
                assert client.http.get("/healthz").status_code == 200
            connections.update(id(c) for c in pool.connections)
    assert len(connections) == 1
    [(count,)] = fetch(
        server,
        select(func.count()).where(events.c.project_id == server.project_id, events.c.user_id == "h1-user"),
    )
    assert count == 22
