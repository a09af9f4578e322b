"""Durability (DESIGN §5): an acknowledged event is committed before the answer, so it survives the server
being killed (SIGKILL) or stopped (SIGTERM) in the middle of a load, and is stored exactly once.
Real ``scrawn serve`` processes on SQLite and PostgreSQL; restarted on the same data."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import grpc
import httpx
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn.server.db.schema import balances, events, ledger_entries
from tests.clients import REGISTER, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import ServerHandle, run_async

GRPC_THREADS, CONNECT_THREADS = 4, 4
ACKED_BEFORE_SIGNAL = 300
USERS = 5


class OwnConnectionGrpcClient(GrpcClient):
    """A grpcio channel with its own HTTP/2 connection (not the process-wide shared subchannel)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def request_for(key: str) -> ev.RegisterEventRequest:
    """The same key always gets the same content, so a re-send is a duplicate, never a conflict."""
    n = int(key.rsplit("-", 1)[1])
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId=f"user-{n % USERS}",
        idempotencyKey=key,
        basicUsage=ev.BasicUsage(amount=1 + n % 9),
    )


class Load:
    """Callers sending RegisterEvent with unique keys until told to stop or the server goes away. Each gRPC
    channel (one HTTP/2 connection) serves ``per_channel`` callers; each Connect caller has an HTTP/1.1
    connection of its own, JSON or binary."""

    def __init__(
        self,
        server: ServerHandle,
        prefix: str,
        callers: tuple[int, int] = (GRPC_THREADS, CONNECT_THREADS),
        per_channel: int = 1,
    ) -> None:
        self.server = server
        self.prefix = prefix
        self.lock = threading.Lock()
        self.attempted: list[str] = []
        self.acked: dict[str, str] = {}  # key -> eventId
        self.failed: dict[str, tuple[str, str, str]] = {}  # key -> (client kind, error kind, detail)
        self.unexpected: list[str] = []
        self.stop = threading.Event()
        grpc_callers, connect_callers = callers
        channels = [
            OwnConnectionGrpcClient(server.grpc_target) for _ in range(-(-grpc_callers // per_channel))
        ]
        self.clients: list[tuple[str, Any]] = [
            ("grpc", channels[i // per_channel]) for i in range(grpc_callers)
        ]
        self.clients += [
            ("connect", ConnectClient(server.base_url, binary=i % 2 == 0)) for i in range(connect_callers)
        ]
        self.threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(len(self.clients))
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wait_for_acks(self, n: int) -> None:
        while len(self.acked) < n:
            assert any(t.is_alive() for t in self.threads), f"load died early: {self.failed}"
            time.sleep(0.005)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)
            assert not t.is_alive()
        for client in {id(c): c for _, c in self.clients}.values():
            client.close()
        assert self.unexpected == []

    def _work(self, i: int) -> None:
        kind, client = self.clients[i]
        md = bearer(self.server.live_key)
        n = 0
        try:
            while not self.stop.is_set():
                key = f"{self.prefix}-{i}-{n}"
                n += 1
                with self.lock:
                    self.attempted.append(key)
                try:
                    res = client.unary(REGISTER, request_for(key), md)
                except RpcError as e:
                    self.failed[key] = (kind, f"rpc:{e.code}", e.message)
                    return
                except (httpx.TransportError, ValueError) as e:  # connection gone / no Connect body
                    self.failed[key] = (kind, type(e).__name__, str(e))
                    return
                if res.idempotencyKey != key or res.duplicate or not res.eventId:
                    self.unexpected.append(f"{key}: {res}")
                self.acked[key] = res.eventId
        except Exception as e:  # reported by finish()
            self.unexpected.append(f"{kind} worker {i}: {e!r}")


def fetch(server: ServerHandle, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def stored_events(server: ServerHandle) -> dict[str, str]:
    """idempotency key -> event id of every live event; asserts that no key is stored twice."""
    rows = fetch(
        server,
        select(events.c.idempotency_key, events.c.id).where(
            events.c.project_id == server.project_id, events.c.mode == "live"
        ),
    )
    twice = [k for k, c in Counter(r.idempotency_key for r in rows).items() if c > 1]
    assert twice == []
    return {r.idempotency_key: r.id for r in rows}


def assert_ledger_consistent(server: ServerHandle) -> None:
    ev_rows = fetch(
        server,
        select(events.c.mode, events.c.id, events.c.debit, events.c.user_id).where(
            events.c.project_id == server.project_id
        ),
    )
    entries = fetch(server, select(ledger_entries).where(ledger_entries.c.project_id == server.project_id))
    assert len(entries) == len(ev_rows)
    by_event = Counter((e.mode, e.event_id, e.amount, e.user_id) for e in entries)
    assert by_event == Counter((r.mode, r.id, -r.debit, r.user_id) for r in ev_rows)
    sums: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        sums[(e.mode, e.user_id)] = sums.get((e.mode, e.user_id), Decimal(0)) + e.amount
    bal = {
        (b.mode, b.user_id): b.balance
        for b in fetch(server, select(balances).where(balances.c.project_id == server.project_id))
    }
    assert bal == sums


def resend_all(server: ServerHandle, keys: list[str], before: dict[str, str]) -> None:
    """Re-send every attempted key: a duplicate (with the stored eventId) exactly for the stored ones."""
    md = bearer(server.live_key)
    with GrpcClient(server.grpc_target) as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda k: client.unary(REGISTER, request_for(k), md), keys))
    for key, res in zip(keys, answers, strict=True):
        assert res.duplicate == (key in before), key
        if key in before:
            assert res.eventId == before[key]
    after = stored_events(server)
    assert set(after) == set(keys)
    assert {k: after[k] for k in before} == before
    assert_ledger_consistent(server)


def assert_told_to_retry(load: Load) -> None:
    """A call cut off by a shutdown or a killed process is told to retry: gRPC UNAVAILABLE, Connect
    `unavailable`, or a refused/closed/reset connection — never another status (e.g. UNKNOWN, INTERNAL)."""
    for key, (kind, error, detail) in load.failed.items():
        if error.startswith("rpc:"):
            assert error == "rpc:unavailable", (key, kind, error, detail)
        else:
            assert kind == "connect", (key, kind, error, detail)


def assert_acknowledged_stored(server: ServerHandle, load: Load) -> dict[str, str]:
    """Every acknowledged event is stored once, under the eventId its caller was told; re-sending every
    attempted key then stores the rest, once. Returns what was stored before the re-sending."""
    before = stored_events(server)
    missing = [k for k in load.acked if k not in before]
    assert missing == [], f"acknowledged but not stored: {missing[:10]}"
    assert {k: before[k] for k in load.acked} == load.acked  # the acknowledged eventId is the stored one
    assert set(before) <= set(load.attempted)
    assert_ledger_consistent(server)
    resend_all(server, load.attempted, before)
    return before


def test_sigkill_mid_load_loses_no_acknowledged_event(server: ServerHandle) -> None:
    load = Load(server, "kill")
    load.start()
    load.wait_for_acks(ACKED_BEFORE_SIGNAL)
    server.stop(signal.SIGKILL)  # mid-load: every thread has a call in flight or about to be
    load.finish()
    assert len(load.acked) >= ACKED_BEFORE_SIGNAL
    # Each thread had at most one call without an answer; those are the only keys in doubt.
    in_doubt = set(load.attempted) - set(load.acked)
    assert in_doubt == set(load.failed)

    server.start()  # same data directory / database
    assert_acknowledged_stored(server, load)


def test_sigterm_mid_load_is_graceful(server: ServerHandle) -> None:
    # 64 callers: 32 on gRPC, 8 to an HTTP/2 connection, and 32 on Connect over HTTP/1.1. (Not Connect over
    # httpx's HTTP/2: its h2 state machine fails the calls still in flight when a graceful GOAWAY comes.)
    load = Load(server, "term", callers=(32, 32), per_channel=8)
    load.start()
    load.wait_for_acks(ACKED_BEFORE_SIGNAL)
    process = server.process
    assert process is not None
    server.stop(signal.SIGTERM)
    assert process.returncode == 0, server.log()[-3000:]  # a clean exit, not the fixture's fallback kill
    assert "Traceback" not in server.log()
    load.finish()
    assert_told_to_retry(load)
    server.start()
    before = assert_acknowledged_stored(server, load)
    assert_refused_unserved(load, before)


def assert_refused_unserved(load: Load, before: dict[str, str]) -> None:
    """A call told to retry during a shutdown was never served: gRPC refused with REFUSED_STREAM, Connect over
    HTTP/1.1 answered 503 `unavailable` or its connection closed before the request was read
    (server/hypercorn_h11.py)."""
    assert {k: v for k, v in load.failed.items() if k in before} == {}
