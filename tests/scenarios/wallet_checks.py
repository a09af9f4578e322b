"""Shared checks for the wallet tests: the ledger's invariants (docs/wallets.md), read straight from the
database a real server writes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from scrawn.server.db.schema import balance_alerts, balances, credit_lots, ledger_entries, reservations
from tests.conftest import ServerHandle, run_async


def key() -> str:
    return str(uuid.uuid4())


def fetch(server: ServerHandle, stmt: Any) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def lots_of(server: ServerHandle, user: str, mode: str = "live") -> list[Any]:
    return fetch(
        server,
        select(credit_lots)
        .where(
            credit_lots.c.project_id == server.project_id,
            credit_lots.c.mode == mode,
            credit_lots.c.user_id == user,
        )
        .order_by(credit_lots.c.expires_at, credit_lots.c.id),
    )


def entries_of(server: ServerHandle, user: str, kind: str | None = None, mode: str = "live") -> list[Any]:
    stmt = select(ledger_entries).where(
        ledger_entries.c.project_id == server.project_id,
        ledger_entries.c.mode == mode,
        ledger_entries.c.user_id == user,
    )
    if kind is not None:
        stmt = stmt.where(ledger_entries.c.kind == kind)
    return fetch(server, stmt.order_by(ledger_entries.c.created_at, ledger_entries.c.id))


def alerts_of(server: ServerHandle, user: str, mode: str = "live") -> list[Any]:
    return fetch(
        server,
        select(balance_alerts)
        .where(
            balance_alerts.c.project_id == server.project_id,
            balance_alerts.c.mode == mode,
            balance_alerts.c.user_id == user,
        )
        .order_by(balance_alerts.c.created_at),
    )


def snapshot(server: ServerHandle, *stmts: Any) -> list[list[Any]]:
    """Several queries read from one consistent snapshot (sweepers may be writing meanwhile)."""

    async def run() -> list[list[Any]]:
        db = server.db()
        try:
            async with db.read() as conn:
                if conn.dialect.name == "postgresql":
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                return [list(await conn.execute(stmt)) for stmt in stmts]
        finally:
            await db.dispose()

    return run_async(run())  # type: ignore[no-any-return]


def assert_invariants(server: ServerHandle) -> None:
    """For every user of the server's project: balance = Σ ledger, held = Σ active holds >= 0, credit lots
    within [0, max(0, balance)], and each lot's expiry entries add up to what it says expired."""
    project = server.project_id
    all_entries, all_reservations, all_lots, all_balances = snapshot(
        server,
        select(ledger_entries).where(ledger_entries.c.project_id == project),
        select(reservations).where(reservations.c.project_id == project),
        select(credit_lots).where(credit_lots.c.project_id == project),
        select(balances).where(balances.c.project_id == project),
    )
    ledger: dict[tuple[str, str], Decimal] = {}
    expiry_entries: dict[tuple[str, str], list[Decimal]] = {}
    for e in all_entries:
        ledger[(e.mode, e.user_id)] = ledger.get((e.mode, e.user_id), Decimal(0)) + e.amount
        if e.kind == "expiry":
            lot_id = (e.description or "").rsplit(" ", 1)[-1]
            expiry_entries.setdefault((e.mode, lot_id), []).append(-e.amount)
    held: dict[tuple[str, str], Decimal] = {}
    for r in all_reservations:
        if r.status == "active":
            held[(r.mode, r.user_id)] = held.get((r.mode, r.user_id), Decimal(0)) + r.amount
    lot_total: dict[tuple[str, str], Decimal] = {}
    for lot in all_lots:
        assert 0 <= lot.remaining <= lot.amount, lot
        assert lot.expired >= 0 and lot.remaining + lot.expired <= lot.amount, lot
        parts = expiry_entries.get((lot.mode, lot.id), [])
        assert len(parts) == lot.expiry_count and sum(parts, Decimal(0)) == lot.expired, (lot, parts)
        assert (lot.due_at is None) == (lot.remaining == 0), lot
        lot_total[(lot.mode, lot.user_id)] = (
            lot_total.get((lot.mode, lot.user_id), Decimal(0)) + lot.remaining
        )
    for b in all_balances:
        k = (b.mode, b.user_id)
        assert b.balance == ledger.get(k, Decimal(0)), (k, b.balance, ledger.get(k))
        assert b.held == held.get(k, Decimal(0)) and b.held >= 0, (k, b.held, held.get(k))
        assert lot_total.get(k, Decimal(0)) <= max(Decimal(0), b.balance), (k, lot_total.get(k), b.balance)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll until ``check()`` holds; the deadline is generous and only bounds a hang."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
