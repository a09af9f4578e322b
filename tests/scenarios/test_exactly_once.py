"""Exactly-once ingest (DESIGN §3.1, §5): a repeated idempotency key with the same content is a success
that returns the original eventId; with different content it is ALREADY_EXISTS naming idempotencyKey.
Real servers, real databases (the ``server`` fixture runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import func, select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.db.schema import balances, events, ledger_entries
from tests.clients import REGISTER, STREAM, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import ServerHandle, free_port, run_async

THREADS = 50


class OwnConnectionGrpcClient(GrpcClient):
    """A grpcio channel with its own HTTP/2 connection (grpcio shares subchannels between channels to
    the same target by default, which would put every "client" on one connection)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        grpc.channel_ready_future(self.channel).result(timeout=30)


def make_clients(handles: list[ServerHandle], n: int) -> list[Any]:
    """``n`` independent clients spread over ``handles`` and over gRPC / Connect binary / Connect JSON."""
    clients: list[Any] = []
    for i in range(n):
        h = handles[i % len(handles)]
        kind = (i // len(handles)) % 3
        if kind == 0:
            clients.append(OwnConnectionGrpcClient(h.grpc_target))
        else:
            c = ConnectClient(h.base_url, binary=kind == 1)
            c.http.get("/healthz")  # open the connection now, so that the calls below start together
            clients.append(c)
    return clients


def run_together(clients: list[Any], call: Callable[[int, Any], Any]) -> list[Any]:
    """Run ``call(i, client)`` on one thread per client, released at once; returns results or RpcErrors."""
    results: list[Any] = [None] * len(clients)
    barrier = threading.Barrier(len(clients))

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i, clients[i])
        except RpcError as e:
            results[i] = e
        except Exception as e:  # anything else is a failure the asserts below report
            results[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return results


def fetch(server: ServerHandle, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def stored(server: ServerHandle, key: str, mode: str = "live") -> list[Any]:
    return fetch(
        server,
        select(events).where(
            events.c.project_id == server.project_id, events.c.mode == mode, events.c.idempotency_key == key
        ),
    )


def ledger_for(server: ServerHandle, event_id: str) -> list[Any]:
    return fetch(
        server,
        select(ledger_entries).where(
            ledger_entries.c.project_id == server.project_id, ledger_entries.c.event_id == event_id
        ),
    )


def balance(server: ServerHandle, user: str, mode: str = "live") -> Decimal | None:
    rows = fetch(
        server,
        select(balances.c.balance).where(
            balances.c.project_id == server.project_id, balances.c.mode == mode, balances.c.user_id == user
        ),
    )
    return rows[0].balance if rows else None


def assert_ledger_consistent(server: ServerHandle) -> None:
    """Every event has exactly one usage entry of -debit; every balance row is Σ its entries."""
    ev_rows = fetch(
        server,
        select(events.c.mode, events.c.id, events.c.debit).where(events.c.project_id == server.project_id),
    )
    entries = fetch(server, select(ledger_entries).where(ledger_entries.c.project_id == server.project_id))
    by_event: dict[tuple[str, str], list[Decimal]] = {}
    for e in entries:
        by_event.setdefault((e.mode, e.event_id), []).append(e.amount)
    assert len(entries) == len(ev_rows)
    for r in ev_rows:
        assert by_event.get((r.mode, r.id)) == [-r.debit], r.id
    sums: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        sums[(e.mode, e.user_id)] = sums.get((e.mode, e.user_id), Decimal(0)) + e.amount
    bal = {
        (b.mode, b.user_id): b.balance
        for b in fetch(server, select(balances).where(balances.c.project_id == server.project_id))
    }
    assert bal == sums


def register(key: str, amount: int = 7, user: str = "u-same", **extra: Any) -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=amount), **extra
    )


def item(key: str, amount: int = 2, user: str = "u-stream") -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=amount)
    )


# ------------------------------------------------------------------------------------------ (a)


def _assert_exactly_one(server: ServerHandle, results: list[Any], key: str, user: str, amount: int) -> None:
    failures = [r for r in results if not isinstance(r, ev.RegisterEventResponse)]
    assert failures == []
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.eventId for r in results}) == 1
    assert {r.idempotencyKey for r in results} == {key}
    assert {r.message for r in results} == {"Event stored successfully"}
    rows = stored(server, key)
    assert len(rows) == 1
    assert rows[0].id == results[0].eventId
    assert rows[0].debit == Decimal(amount)
    entries = ledger_for(server, rows[0].id)
    assert [(e.kind, e.amount, e.user_id) for e in entries] == [("usage", Decimal(-amount), user)]
    assert balance(server, user) == Decimal(-amount)
    assert_ledger_consistent(server)


def test_concurrent_same_key_is_stored_once(server: ServerHandle) -> None:
    clients = make_clients([server], THREADS)
    results = run_together(
        clients, lambda _, c: c.unary(REGISTER, register("same-key", 7), bearer(server.live_key))
    )
    _assert_exactly_one(server, results, "same-key", "u-same", 7)


def test_concurrent_same_key_on_two_server_processes(server: ServerHandle, tmp_path: Path) -> None:
    """N processes on one database behave as one: the race is decided by the database, not in memory."""
    port = free_port()
    second = dataclasses.replace(
        server,
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        process=None,
        log_path=tmp_path / "server2.log",
        env=server.env | {"SCRAWN_PORT": str(port)},
    )
    second.start()
    try:
        for round_ in range(3):
            key, user = f"two-procs-{round_}", f"u-two-{round_}"
            clients = make_clients([server, second], 24)
            req = register(key, 5, user)

            def send(_: int, client: Any, req: ev.RegisterEventRequest = req) -> Any:
                return client.unary(REGISTER, req, bearer(server.live_key))

            results = run_together(clients, send)
            _assert_exactly_one(server, results, key, user, 5)
    finally:
        second.stop()


# ------------------------------------------------------------------------------------------ (b)


def test_same_key_different_content_is_already_exists(server: ServerHandle) -> None:
    md = bearer(server.live_key)
    grpc_client, connect = GrpcClient(server.grpc_target), ConnectClient(server.base_url)
    try:
        first = grpc_client.unary(REGISTER, register("k-conflict", 5, "u-c"), md)
        assert not first.duplicate
        different = [
            register("k-conflict", 6, "u-c"),  # amount
            register("k-conflict", 5, "u-other"),  # user
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId="u-c",
                idempotencyKey="k-conflict",
                basicUsage=ev.BasicUsage(expr="5"),
            ),  # same price, other debit
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId="u-c",
                idempotencyKey="k-conflict",
                basicUsage=ev.BasicUsage(amount=5, metadata='{"a": 1}'),
            ),
            ev.RegisterEventRequest(
                type=ev.BASIC_USAGE,
                userId="u-c",
                idempotencyKey="k-conflict",
                basicUsage=ev.BasicUsage(amount=5, basicUsageType=ev.MIDDLEWARE_CALL),
            ),
            register("k-conflict", 5, "u-c", reportedTimestamp=1_700_000_000),
            register("k-conflict", 5, "u-c", eventId="6f1c7e0e-4a53-4d4b-9a4e-2b1f1d0c9a11"),
        ]
        for client in (grpc_client, connect):
            for req in different:
                try:
                    client.unary(REGISTER, req, md)
                except RpcError as e:
                    assert e.code == "already_exists", (type(client), req)
                    assert "idempotencyKey" in e.message
                else:
                    raise AssertionError(f"accepted a conflicting event: {req}")
        # The same content is still a duplicate of the original, on every protocol.
        for client in (grpc_client, connect):
            again = client.unary(REGISTER, register("k-conflict", 5, "u-c"), md)
            assert (again.eventId, again.duplicate) == (first.eventId, True)
        # Test mode is another namespace: the same key there is a new event, not a conflict.
        in_test = grpc_client.unary(REGISTER, register("k-conflict", 6, "u-c"), bearer(server.test_key))
        assert not in_test.duplicate and in_test.eventId != first.eventId
    finally:
        grpc_client.close()
        connect.close()
    rows = stored(server, "k-conflict")
    assert [(r.id, r.user_id, r.debit) for r in rows] == [(first.eventId, "u-c", Decimal(5))]
    assert balance(server, "u-c") == Decimal(-5)
    assert balance(server, "u-other") is None
    assert [r.debit for r in stored(server, "k-conflict", "test")] == [Decimal(6)]
    assert balance(server, "u-c", "test") == Decimal(-6)
    assert_ledger_consistent(server)


def test_concurrent_conflicting_contents_one_wins(server: ServerHandle) -> None:
    clients = make_clients([server], 40)
    results = run_together(
        clients,
        lambda i, c: c.unary(REGISTER, register("k-race", 1 + i % 2, "u-race"), bearer(server.live_key)),
    )
    ok = {i: r for i, r in enumerate(results) if isinstance(r, ev.RegisterEventResponse)}
    bad = {i: r for i, r in enumerate(results) if i not in ok}
    assert ok, results
    winner = {1 + i % 2 for i in ok}
    assert len(winner) == 1, "both contents were accepted for one key"
    [amount] = winner
    assert set(ok) == {i for i in range(40) if 1 + i % 2 == amount}
    assert sum(not r.duplicate for r in ok.values()) == 1
    assert len({r.eventId for r in ok.values()}) == 1
    for r in bad.values():
        assert isinstance(r, RpcError), r
        assert r.code == "already_exists" and "idempotencyKey" in r.message
    rows = stored(server, "k-race")
    assert len(rows) == 1 and rows[0].debit == Decimal(amount)
    assert balance(server, "u-race") == Decimal(-amount)
    assert_ledger_consistent(server)


# ------------------------------------------------------------------------------------------ (c)


def test_stream_duplicates_within_and_across_calls(server: ServerHandle) -> None:
    md = bearer(server.live_key)
    with (
        GrpcClient(server.grpc_target) as grpc_client,
        ConnectClient(server.base_url, binary=True) as connect,
    ):
        first = grpc_client.stream(
            STREAM, [item("s1"), item("s2"), item("s1"), item("s3"), item("s2"), item("s1")], md
        )
        assert (first.eventsProcessed, first.eventsFailed, first.duplicates) == (6, 0, 3)
        assert first.message == "Processed 6 events (6 succeeded, 0 failed)"

        second = connect.stream(STREAM, [item("s1"), item("s4"), item("s4"), item("s3")], md)
        assert (second.eventsProcessed, second.eventsFailed, second.duplicates) == (4, 0, 3)

        # A stream item conflicting with a stored key (or an earlier item) fails alone; the rest succeed.
        third = grpc_client.stream(
            STREAM, [item("s5"), item("s1", amount=99), item("s5", amount=98), item("s6"), item("s2")], md
        )
        assert (third.eventsProcessed, third.eventsFailed, third.duplicates) == (5, 2, 1)
        assert [(f.eventIndex, f.idempotencyKey) for f in third.failures] == [(1, "s1"), (2, "s5")]
        assert all("idempotencyKey" in f.message for f in third.failures)

        # RegisterEvent and StreamEvents share one key space: same content is a duplicate across them.
        unary = grpc_client.unary(REGISTER, register("s-shared", 2, "u-stream"), md)
        fourth = connect.stream(STREAM, [item("s-shared"), item("s-shared", amount=3)], md)
        assert (fourth.duplicates, fourth.eventsFailed) == (1, 1)
        again = connect.unary(REGISTER, register("s-shared", 2, "u-stream"), md)
        assert (again.eventId, again.duplicate) == (unary.eventId, True)

    keys = fetch(
        server,
        select(events.c.idempotency_key, func.count())
        .where(events.c.project_id == server.project_id)
        .group_by(events.c.idempotency_key),
    )
    assert dict(keys) == {k: 1 for k in ("s1", "s2", "s3", "s4", "s5", "s6", "s-shared")}
    assert balance(server, "u-stream") == Decimal(-2 * 7)
    assert_ledger_consistent(server)


def test_stream_many_repeats_of_few_keys(server: ServerHandle) -> None:
    """1,000 items over 10 keys in one call, then again: 10 events, 1,990 duplicates."""
    md = bearer(server.live_key)
    items = [item(f"r{i % 10}", amount=i % 10, user=f"u-r{(i % 10) % 3}") for i in range(1000)]
    with GrpcClient(server.grpc_target) as client:
        a = client.stream(STREAM, items, md)
        b = client.stream(STREAM, items, md)
    assert (a.eventsFailed, a.duplicates) == (0, 990)
    assert (b.eventsFailed, b.duplicates) == (0, 1000)
    rows = fetch(
        server,
        select(events.c.idempotency_key, events.c.debit).where(events.c.project_id == server.project_id),
    )
    assert sorted((r.idempotency_key, r.debit) for r in rows) == [(f"r{k}", Decimal(k)) for k in range(10)]
    assert_ledger_consistent(server)


def test_event_id_reused_under_another_key_is_already_exists(server: ServerHandle) -> None:
    """A client-chosen eventId is unique too: another key with the same eventId is a conflict naming
    eventId, whether the first is already stored or in the same batch (one StreamEvents call)."""
    md = bearer(server.live_key)
    eid, eid2 = "0d7a3a43-0c55-4f6e-a1b8-0d0f2b7f4c01", "9a0e4a0b-7d5e-4a8e-9b43-7e1f7c2a1d02"
    with GrpcClient(server.grpc_target) as client:
        first = client.unary(REGISTER, register("eid-a", 3, "u-eid", eventId=eid), md)
        assert first.eventId == eid
        try:
            client.unary(REGISTER, register("eid-b", 3, "u-eid", eventId=eid), md)
        except RpcError as e:
            assert e.code == "already_exists" and "eventId" in e.message
        else:
            raise AssertionError("a second event took an existing eventId")
        items = [
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE,
                userId="u-eid",
                idempotencyKey=k,
                eventId=eid2,
                basicUsage=ev.BasicUsage(amount=4),
            )
            for k in ("eid-c", "eid-d")
        ]
        summary = client.stream(STREAM, items, md)
        assert (summary.eventsFailed, summary.duplicates) == (1, 0)
        assert summary.failures[0].eventIndex == 1 and "eventId" in summary.failures[0].message
    rows = fetch(
        server,
        select(events.c.idempotency_key, events.c.id)
        .where(events.c.project_id == server.project_id)
        .order_by(events.c.idempotency_key),
    )
    assert [(r.idempotency_key, r.id) for r in rows] == [("eid-a", eid), ("eid-c", eid2)]
    assert balance(server, "u-eid") == Decimal(-7)
    assert_ledger_consistent(server)
