"""``event.v1.EventService/VoidEvent`` (docs/events.md#voiding-an-event) against a real server on SQLite and
PostgreSQL: one reversing ledger entry, the balance restored exactly, idempotent under 20 concurrent calls,
scoped to the project and mode, shown by QueryEvents, ``scrawn explain`` and ``scrawn events void``."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from scrawn._proto.wallet.v1 import wallet_pb2 as wallet
from scrawn.server.db.schema import api_keys, balances, events, ledger_entries
from scrawn.server.keys.service import KeyService, hash_key
from scrawn.server.projects.service import create_project
from tests.clients import (
    QUERY,
    REGISTER,
    VOID,
    WALLET,
    ConnectClient,
    GrpcClient,
    RpcError,
    all_clients,
    bearer,
)
from tests.conftest import SECRET, ServerHandle, run_async

SOME_ID = "0b6c9f57-4c1e-4f0e-9a35-3f3f6b1c2d4e"  # fixed: test ids must be the same on every xdist worker


def user() -> str:
    return f"void-{uuid.uuid4().hex[:10]}"


def register(
    c: Any, key: str, user_id: str, *, amount: int | None = None, expr: str | None = None, idem: str = ""
) -> Any:
    usage = ev.BasicUsage(amount=amount) if amount is not None else ev.BasicUsage(expr=expr)
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId=user_id, basicUsage=usage, idempotencyKey=idem or uuid.uuid4().hex
    )
    return c.unary(REGISTER, request, bearer(key))


def void(
    c: Any, key: str, *, event_id: str = "", idem: str = "", reason: str = "wrong amount", mode: str = ""
) -> Any:
    metadata = bearer(key) + ([("x-scrawn-mode", mode)] if mode else [])
    return c.unary(VOID, ev.VoidEventRequest(eventId=event_id, idempotencyKey=idem, reason=reason), metadata)


def balance(c: Any, key: str, user_id: str) -> Decimal:
    return Decimal(
        c.unary(WALLET + "GetBalance", wallet.GetBalanceRequest(userId=user_id), bearer(key)).balance
    )


def spent(c: Any, key: str, user_id: str) -> Decimal:
    settings = c.unary(WALLET + "GetUserSettings", wallet.GetUserSettingsRequest(userId=user_id), bearer(key))
    return Decimal(settings.spent)


def db_rows(handle: ServerHandle, stmt: Any) -> list[Any]:
    async def read() -> list[Any]:
        db = handle.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    rows: list[Any] = run_async(read())
    return rows


def ledger_of(handle: ServerHandle, user_id: str) -> list[Any]:
    return db_rows(
        handle,
        select(ledger_entries)
        .where(ledger_entries.c.user_id == user_id)
        .order_by(ledger_entries.c.created_at),
    )


def key_id(handle: ServerHandle, key: str) -> str:
    [row] = db_rows(handle, select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(SECRET, key)))
    return str(row.id)


@pytest.fixture
def c(module_server: ServerHandle) -> Any:
    with ConnectClient(module_server.base_url) as client:
        yield client


def test_void_restores_the_balance_exactly(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()
    kept = register(c, srv.live_key, u, amount=250)
    wrong = register(c, srv.live_key, u, expr="div(1, 3)")
    assert balance(c, srv.live_key, u) == Decimal("-250.333333")
    assert spent(c, srv.live_key, u) == Decimal("250.333333")

    done = void(c, srv.live_key, event_id=wrong.eventId, reason="charged twice by our bug")
    assert (done.eventId, done.userId, done.amount) == (wrong.eventId, u, "0.333333")
    assert done.idempotencyKey == wrong.idempotencyKey
    assert done.reason == "charged twice by our bug"
    assert done.voidedBy == key_id(srv, srv.live_key)
    assert done.voidedTimestamp > 0 and not done.alreadyVoided and done.reversalEntryId

    assert balance(c, srv.live_key, u) == Decimal("-250")
    assert spent(c, srv.live_key, u) == Decimal("250")  # counted this month: the spend count drops too
    entries = ledger_of(srv, u)
    assert sorted((e.kind, e.amount) for e in entries) == [
        ("usage", Decimal("-250")),
        ("usage", Decimal("-0.333333")),
        ("void", Decimal("0.333333")),
    ]
    [reversal] = [e for e in entries if e.kind == "void"]
    assert (reversal.id, reversal.event_id, reversal.description) == (
        done.reversalEntryId,
        wrong.eventId,
        "charged twice by our bug",
    )
    [row] = db_rows(srv, select(balances.c.balance).where(balances.c.user_id == u))
    assert row.balance == sum(e.amount for e in entries)  # the balance row is still Σ its entries
    [kept_row] = db_rows(srv, select(events.c.voided_at).where(events.c.id == kept.eventId))
    assert kept_row.voided_at is None


def test_voiding_twice_is_one_reversal(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()
    event = register(c, srv.live_key, u, amount=40)
    first = void(c, srv.live_key, event_id=event.eventId, reason="first")
    again = void(c, srv.dash_key, event_id=event.eventId, reason="second reason is not kept")
    assert again.alreadyVoided and not first.alreadyVoided
    for field in ("eventId", "userId", "amount", "voidedTimestamp", "voidedBy", "reason", "reversalEntryId"):
        assert getattr(again, field) == getattr(first, field), field
    assert balance(c, srv.live_key, u) == 0
    assert [e.kind for e in ledger_of(srv, u)].count("void") == 1


def test_twenty_concurrent_voids_write_one_reversal(module_server: ServerHandle) -> None:
    srv, u = module_server, user()
    with ConnectClient(srv.base_url) as c:
        event = register(c, srv.live_key, u, amount=1234)
        register(c, srv.live_key, u, amount=1)
    answers: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def one(i: int) -> None:
        client = GrpcClient(srv.grpc_target) if i % 2 else ConnectClient(srv.base_url)
        try:
            start.wait()
            answers.append(void(client, srv.live_key, event_id=event.eventId, reason=f"void {i}"))
        except BaseException as e:
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) == 20
    assert sum(not a.alreadyVoided for a in answers) == 1
    assert len({(a.reversalEntryId, a.voidedTimestamp, a.reason) for a in answers}) == 1
    entries = ledger_of(srv, u)
    assert [e.kind for e in entries].count("void") == 1
    with ConnectClient(srv.base_url) as c:
        assert balance(c, srv.live_key, u) == Decimal(-1)


def test_another_project_or_mode_gets_not_found(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()

    async def other_key() -> str:
        db = srv.db()
        try:
            async with db.write() as conn:
                project_id = await create_project(conn, "other")
                _, key = await KeyService(db, SECRET).create_key(conn, project_id, "live", "other")
            return key
        finally:
            await db.dispose()

    other: str = run_async(other_key())
    event = register(c, srv.live_key, u, amount=7, idem=f"{u}-k")
    for client in all_clients(srv):
        with client:
            for key, mode in ((other, ""), (srv.test_key, ""), (srv.dash_key, "test")):
                with pytest.raises(RpcError) as e:
                    void(client, key, event_id=event.eventId, mode=mode)
                assert (e.value.code, e.value.message) == ("not_found", "eventId: event not found")
            with pytest.raises(RpcError) as e:
                void(client, other, idem=f"{u}-k")
            assert (e.value.code, e.value.message) == ("not_found", "idempotencyKey: event not found")
    assert balance(c, srv.live_key, u) == Decimal(-7)
    done = void(c, srv.dash_key, idem=f"{u}-k", mode="live")  # the dash key in the event's mode may
    assert done.eventId == event.eventId and done.voidedBy == key_id(srv, srv.dash_key)
    assert balance(c, srv.live_key, u) == 0


def test_void_by_idempotency_key_and_the_key_stays_taken(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()
    event = register(c, srv.test_key, u, amount=99, idem=f"{u}-once")
    done = void(c, srv.test_key, idem=f"{u}-once", reason="test data")
    assert (done.eventId, done.amount, done.alreadyVoided) == (event.eventId, "99", False)
    again = register(c, srv.test_key, u, amount=99, idem=f"{u}-once")  # the original, re-sent
    assert again.duplicate and again.eventId == event.eventId
    with pytest.raises(RpcError) as e:  # other content under the taken key is still a conflict
        register(c, srv.test_key, u, amount=5, idem=f"{u}-once")
    assert e.value.code == "already_exists"
    assert balance(c, srv.test_key, u) == 0
    assert sorted(e.kind for e in ledger_of(srv, u)) == ["usage", "void"]


def test_a_zero_debit_event_is_still_marked(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()
    event = register(c, srv.live_key, u, amount=0)
    done = void(c, srv.live_key, event_id=event.eventId, reason="never happened")
    assert (done.amount, done.alreadyVoided) == ("0", False)
    [row] = db_rows(srv, select(events).where(events.c.id == event.eventId))
    assert row.voided_at == done.voidedTimestamp and row.void_reason == "never happened"
    assert balance(c, srv.live_key, u) == 0


@pytest.mark.parametrize(
    ("event_id", "idem", "reason", "field"),
    [
        ("", "", "why", "eventId"),
        (SOME_ID, "k", "why", "idempotencyKey"),
        ("not-a-uuid", "", "why", "eventId"),
        ("", "k" * 256, "why", "idempotencyKey"),
        ("", "k\x00", "why", "idempotencyKey"),
        (SOME_ID, "", "", "reason"),
        (SOME_ID, "", "   ", "reason"),
        (SOME_ID, "", "r" * 256, "reason"),
        (SOME_ID, "", "bad\x00reason", "reason"),
    ],
)
def test_bad_requests_name_the_field(
    module_server: ServerHandle, c: Any, event_id: str, idem: str, reason: str, field: str
) -> None:
    with pytest.raises(RpcError) as e:
        void(c, module_server.live_key, event_id=event_id, idem=idem, reason=reason)
    assert e.value.code == "invalid_argument"
    assert e.value.message.startswith(f"Void validation failed: {field}: "), e.value.message


def test_unknown_event_is_not_found(module_server: ServerHandle, c: Any) -> None:
    with pytest.raises(RpcError) as e:
        void(c, module_server.live_key, event_id=str(uuid.uuid4()))
    assert (e.value.code, e.value.message) == ("not_found", "eventId: event not found")


def _query(c: Any, key: str, u: str, *, include_voided: bool, aggregation: Any = None) -> Any:
    where = q.FilterGroup(conditions=[q.FilterCondition(field="userId", operator=q.EQ, value=u)])
    request = q.QueryEventsRequest(where=where, include_voided=include_voided)
    if aggregation is not None:
        request.aggregation.CopyFrom(aggregation)
    return c.unary(QUERY, request, bearer(key))


def test_query_events_leaves_voided_events_out_unless_asked(module_server: ServerHandle) -> None:
    srv, u = module_server, user()
    with ConnectClient(srv.base_url) as c:
        register(c, srv.live_key, u, amount=100)
        wrong = register(c, srv.live_key, u, expr="2.5")
        void(c, srv.live_key, event_id=wrong.eventId, reason="duplicate upload")
    total = q.Aggregation(type=q.SUM, field="debitAmount")
    count = q.Aggregation(type=q.COUNT)
    for client in all_clients(srv):
        with client:
            rows = _query(client, srv.live_key, u, include_voided=False)
            assert rows.total == 1 and [r.debit_amount_exact for r in rows.rows] == ["100"]
            assert not rows.rows[0].HasField("voided_timestamp")
            every = _query(client, srv.live_key, u, include_voided=True)
            assert every.total == 2
            [voided] = [r for r in every.rows if r.event_id == wrong.eventId]
            assert voided.void_reason == "duplicate upload" and voided.voided_timestamp.endswith("Z")
            summed = _query(client, srv.live_key, u, include_voided=False, aggregation=total)
            assert [a.agg_value for a in summed.agg_rows] == ["100"]
            summed = _query(client, srv.live_key, u, include_voided=True, aggregation=total)
            assert [a.agg_value for a in summed.agg_rows] == ["102.5"]
            counted = _query(client, srv.dash_key, u, include_voided=False, aggregation=count)
            assert [a.agg_value for a in counted.agg_rows] == ["1"]


def cli(handle: ServerHandle, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", *args, "--project", handle.project_id],
        env=handle.env | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert (done.returncode == 0) == ok, done.stdout + done.stderr
    return done


def test_cli_void_and_explain(module_server: ServerHandle, c: Any) -> None:
    srv, u = module_server, user()
    by_id = register(c, srv.live_key, u, amount=300)
    by_key = register(c, srv.test_key, u, amount=20, idem=f"{u}-cli")

    out = cli(srv, "events", "void", by_id.eventId, "--reason", "refund for outage").stdout
    assert f"voided event {by_id.eventId}" in out and "credited back 300" in out
    out = cli(srv, "events", "void", by_id.eventId, "--reason", "again").stdout
    assert "already voided" in out and "refund for outage" in out
    out = cli(srv, "events", "void", f"{u}-cli", "--by-key", "--mode", "test", "--reason", "test").stdout
    assert f"voided event {by_key.eventId}" in out
    assert balance(c, srv.live_key, u) == 0 and balance(c, srv.test_key, u) == 0
    assert [e.kind for e in ledger_of(srv, u)].count("void") == 2

    explained = cli(srv, "explain", by_id.eventId).stdout
    [reversal] = [e for e in ledger_of(srv, u) if e.kind == "void" and e.event_id == by_id.eventId]
    assert "VOIDED at" in explained and "scrawn events void" in explained and "refund for outage" in explained
    assert f"reversal entry {reversal.id} credited 300 back" in explained
    done = void(c, srv.live_key, event_id=(register(c, srv.live_key, u, amount=1).eventId), reason="api")
    explained = cli(srv, "explain", done.eventId).stdout
    assert f"by key {done.voidedBy} live (live key)" in explained

    failed = cli(srv, "events", "void", str(uuid.uuid4()), "--reason", "x", ok=False)
    assert "eventId: event not found" in failed.stdout + failed.stderr
    failed = cli(srv, "events", "void", by_id.eventId, "--reason", " ", ok=False)
    assert "--reason: is required" in failed.stdout + failed.stderr
