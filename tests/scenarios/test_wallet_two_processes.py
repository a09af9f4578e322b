"""Two ``scrawn serve`` processes on one database, both sweeping: every expired hold is released exactly
once and every expiring credit expires exactly once (real time, 1-3 s TTLs, generous polling deadlines)."""

from __future__ import annotations

import dataclasses
import re
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from scrawn._proto.wallet.v1 import wallet_pb2 as w
from scrawn.server.db.schema import balances, credit_lots, ledger_entries, reservations
from tests.clients import WALLET, GrpcClient, bearer
from tests.conftest import ServerHandle, free_port, make_server
from tests.scenarios.wallet_checks import assert_invariants, fetch, key, wait_for

USERS = [f"two-proc-{i}" for i in range(6)]
HOLDS_PER_USER = 10
LOT_USER = "two-proc-lot"


def _released(handle: ServerHandle) -> int:
    return sum(int(n) for n in re.findall(r"released (\d+) expired reservations", handle.log()))


def test_two_processes_release_each_hold_and_expire_each_credit_once(
    database_url: str, tmp_path: Path
) -> None:
    first = make_server(database_url, tmp_path)
    first.env["SCRAWN_LOG_LEVEL"] = "info"  # each sweep logs how many holds it released
    port = free_port()
    second = dataclasses.replace(
        first,
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        process=None,
        log_path=tmp_path / "server2.log",
        env=first.env | {"SCRAWN_PORT": str(port)},
    )
    first.start()
    second.start()
    try:
        auth = bearer(first.live_key)
        clients = [GrpcClient(first.grpc_target), GrpcClient(second.grpc_target)]
        try:
            for user in USERS:
                clients[0].unary(
                    WALLET + "Credit", w.CreditRequest(userId=user, amount="100", idempotencyKey=key()), auth
                )
            # Credit that expires while holds still need it: it expires piece by piece as they are released.
            clients[1].unary(
                WALLET + "Credit",
                w.CreditRequest(
                    userId=LOT_USER, amount="10", idempotencyKey=key(), expiresAt=int(time.time()) + 3
                ),
                auth,
            )
            ids = []
            for i in range(HOLDS_PER_USER):  # all of that credit held, before it expires (1 s to 3 s TTLs)
                hold = clients[i % 2].unary(
                    WALLET + "CreateReservation",
                    w.CreateReservationRequest(
                        userId=LOT_USER, amount="1", ttlSeconds=1 + i % 3, idempotencyKey=key()
                    ),
                    auth,
                )
                ids.append(hold.id)
            for i in range(HOLDS_PER_USER):
                for user in USERS:
                    hold = clients[i % 2].unary(
                        WALLET + "CreateReservation",
                        w.CreateReservationRequest(
                            userId=user, amount="1.5", ttlSeconds=1, idempotencyKey=key()
                        ),
                        auth,
                    )
                    ids.append(hold.id)
            assert len(set(ids)) == len(ids) == HOLDS_PER_USER * (len(USERS) + 1)

            def settled() -> bool:
                statuses = fetch(
                    first, select(reservations.c.status).where(reservations.c.project_id == first.project_id)
                )
                lots = fetch(
                    first, select(credit_lots.c.remaining).where(credit_lots.c.project_id == first.project_id)
                )
                return all(s.status != "active" for s in statuses) and all(lot.remaining == 0 for lot in lots)

            wait_for(settled, "every hold to be released and the credit to expire", timeout=60)
            time.sleep(1.5)  # more sweeps on both processes: nothing may move again
        finally:
            for c in clients:
                c.close()

        rows = fetch(first, select(reservations).where(reservations.c.project_id == first.project_id))
        assert len(rows) == len(ids) and {r.status for r in rows} == {"expired"}
        assert all(r.transaction_id is None and r.confirmed_amount is None for r in rows)
        for b in fetch(first, select(balances).where(balances.c.project_id == first.project_id)):
            assert b.held == 0, b
            assert b.balance == (Decimal(100) if b.user_id in USERS else Decimal(0)), b
        kinds = {
            e.kind
            for e in fetch(
                first, select(ledger_entries).where(ledger_entries.c.project_id == first.project_id)
            )
        }
        assert kinds == {"grant", "expiry"}  # holds never touch the ledger
        [lot] = fetch(first, select(credit_lots).where(credit_lots.c.project_id == first.project_id))
        assert (lot.remaining, lot.expired, lot.due_at) == (0, 10, None)
        assert_invariants(first)  # includes: each lot's expiry entries add up to exactly what it expired
        print("released by each process:", _released(first), _released(second))
        released = _released(first) + _released(second)
        assert released == len(ids), (released, len(ids))  # no hold released twice (or touched otherwise)
    finally:
        second.stop()
        first.stop()
