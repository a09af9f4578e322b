"""Reservation expiry under a frozen-then-advanced clock (SCRAWN_CLOCK_FILE), with two server processes on
one PostgreSQL database: while the clock stands still nothing expires; once it moves past the TTLs, every
hold is released exactly once, by one process or the other."""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from decimal import Decimal

import pytest

from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import WALLET, GrpcClient, bearer
from tests.conftest import drop_pg_database, free_port, make_server, new_pg_database

HOLDS = 40


def test_holds_expire_once_when_the_frozen_clock_moves(tmp_path, postgres_ok: bool) -> None:
    if not postgres_ok:
        pytest.skip("PostgreSQL unavailable")
    url, name = new_pg_database()
    clock = tmp_path / "clock"
    start = int(time.time() * 1000)
    clock.write_text(str(start))
    (tmp_path / "a").mkdir()
    first = make_server(url, tmp_path / "a")
    port = free_port()
    second = dataclasses.replace(
        first,
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        log_path=tmp_path / "b.log",
        env=first.env | {"SCRAWN_PORT": str(port)},
        process=None,
    )
    for server in (first, second):
        server.env |= {"SCRAWN_CLOCK_FILE": str(clock), "SCRAWN_LOG_LEVEL": "info"}
        server.start()
    try:
        clients = [GrpcClient(first.grpc_target), GrpcClient(second.grpc_target)]
        auth = bearer(first.live_key)

        def call(i: int, method: str, request: object) -> object:
            return clients[i % 2].unary(WALLET + method, request, auth)

        call(0, "Credit", w.CreditRequest(userId="u", amount="1000", idempotencyKey=str(uuid.uuid4())))
        holds = [
            call(
                i,
                "CreateReservation",
                w.CreateReservationRequest(
                    userId="u", amount="7", ttlSeconds=60, idempotencyKey=str(uuid.uuid4())
                ),
            )
            for i in range(HOLDS)
        ]
        keeper = call(
            0,
            "CreateReservation",
            w.CreateReservationRequest(
                userId="u", amount="5", ttlSeconds=600, idempotencyKey=str(uuid.uuid4())
            ),
        )
        assert all(h.expiresAt == start + 60_000 for h in holds)  # the frozen clock, in both processes

        time.sleep(1.5)  # three sweeps on each process, with the clock standing still
        frozen = call(1, "GetBalance", w.GetBalanceRequest(userId="u"))
        assert Decimal(frozen.held) == HOLDS * 7 + 5

        clock.write_text(str(start + 61_000))
        deadline = time.monotonic() + 20
        while Decimal(call(0, "GetBalance", w.GetBalanceRequest(userId="u")).held) != 5:
            assert time.monotonic() < deadline, "the holds were not released"
            time.sleep(0.1)

        listed = call(1, "ListReservations", w.ListReservationsRequest(userId="u", limit=100))
        status = {r.id: r.status for r in listed.reservations}
        assert {status[h.id] for h in holds} == {"expired"}
        assert status[keeper.id] == "active"
        balance = call(0, "GetBalance", w.GetBalanceRequest(userId="u"))
        assert (balance.balance, balance.held, balance.available) == ("1000", "5", "995")
        kinds = [
            t.kind for t in call(0, "ListTransactions", w.ListTransactionsRequest(userId="u")).transactions
        ]
        assert kinds == ["grant"]  # expiry moves holds, never money
    finally:
        for server in (first, second):
            server.stop()
        drop_pg_database(name)
    released = [
        int(n)
        for server in (first, second)
        for n in re.findall(r"released (\d+) expired reservations", server.log())
    ]
    assert sum(released) == HOLDS  # each hold released once, across both processes
