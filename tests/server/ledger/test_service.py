"""The ledger service on both databases: a batch for several users, lots consumed soonest-expiring first,
the spend cap and available refusals (the SDK's error classes), the low-balance crossing with its outbox
message, and the balance-range refusal."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import InsufficientCreditsError, SpendCapExceededError
from scrawn.money import MAX_MICROS, from_micros
from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import balance_alerts, ledger_entries
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.types import LedgerEntry
from tests.server.fresh import Fresh

D = Decimal
MODE = "live"


def usage(project_id: str, user_id: str, amount: str) -> LedgerEntry:
    return LedgerEntry(project_id, MODE, user_id, "usage", -D(amount))


async def credit(
    conn: AsyncConnection, project_id: str, user_id: str, amount: str, key: str, expires_at: int | None = None
) -> None:
    entry = LedgerEntry(
        project_id, MODE, user_id, "grant", D(amount), idempotency_key=key, expires_at=expires_at
    )
    await ledger.post_keyed(conn, entry, require_available=False)


async def test_a_batch_moves_several_users_and_counts_their_spend(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        entries = [
            usage(project_id, "u2", "1.5"),
            usage(project_id, "u1", "2"),
            usage(project_id, "u1", "0.25"),
        ]
        await ledger.post(conn, entries, now_ms())
    async with db.read() as conn:
        one = await ledger.read_limits(conn, project_id, MODE, "u1")
        two = await ledger.read_limits(conn, project_id, MODE, "u2")
        count = await conn.scalar(select(func.count()).select_from(ledger_entries))
    assert (one.balance, one.spent, two.balance, two.spent) == (
        D("-2.25"),
        D("2.25"),
        D("-1.5"),
        D("1.5"),
    )
    assert count == 3  # one entry per posted entry, each user's row moved by their sum


async def test_lots_are_consumed_soonest_expiring_first_after_the_due_ones_expire(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    now = now_ms()
    async with db.write() as conn:
        await credit(conn, project_id, "u", "10", "permanent")
        await credit(conn, project_id, "u", "5", "late", expires_at=now + 3_600_000)
        await credit(conn, project_id, "u", "4", "soon", expires_at=now + 60_000)
        await credit(conn, project_id, "u", "3", "due", expires_at=now + 150)
    await asyncio.sleep(0.3)  # the last one is due now
    async with db.write() as conn:
        await ledger.post(conn, [usage(project_id, "u", "6")], now_ms())
    async with db.read() as conn:
        lots = {lot.amount: lot for lot in await ledger.lots_of(conn, project_id, MODE, "u")}
        balance = await ledger.read(conn, project_id, MODE, "u")
    assert (lots[D(3)].remaining, lots[D(3)].expired) == (0, 3)  # expired before the debit
    assert lots[D(4)].remaining == 0 and lots[D(5)].remaining == 3  # soonest first, then the next
    assert balance.balance == D(22) - 3 - 6  # the permanent credit is spent last


async def test_wallet_debits_are_refused_past_available_and_the_spend_cap(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        await credit(conn, project_id, "u", "20", "c")
        await ledger.set_limits(conn, project_id, MODE, "u", {"spend_cap": D(10)})

    def debit(amount: str, key: str) -> LedgerEntry:
        return LedgerEntry(project_id, MODE, "u", "debit", -D(amount), idempotency_key=key)

    async with db.write() as conn:
        await ledger.post_keyed(conn, debit("6", "d1"), require_available=True)
    with pytest.raises(SpendCapExceededError) as over:
        async with db.write() as conn:
            await ledger.post_keyed(conn, debit("5", "d2"), require_available=True)
    e = over.value
    assert (e.spend_cap, e.spent, e.held, e.requested_amount) == (D(10), D(6), D(0), D(5))
    assert e.message.startswith("Spend cap exceeded: amount: requested 5 but only 4 remains")
    async with db.write() as conn:
        await ledger.set_limits(conn, project_id, MODE, "u", {"spend_cap": None})
    with pytest.raises(InsufficientCreditsError) as short:
        async with db.write() as conn:
            await ledger.post_keyed(conn, debit("15", "d3"), require_available=True)
    s = short.value
    assert (s.current_balance, s.available, s.requested_amount) == (D(14), D(14), D(15))
    assert s.message == "Insufficient funds: amount: requested 15 but available is 14 (balance 14)"
    async with db.read() as conn:
        assert (await ledger.read(conn, project_id, MODE, "u")).balance == 14  # refusals moved nothing


async def test_a_low_balance_crossing_alerts_once_with_its_outbox_message(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    await fresh.add_webhook_endpoint()
    async with db.write() as conn:
        await credit(conn, project_id, "u", "100", "c")
        await ledger.set_limits(conn, project_id, MODE, "u", {"low_balance_threshold": D(50)})
    for amount in ("40", "20", "30"):  # 60 (above), 40 (crossed), 10 (already below)
        async with db.write() as conn:
            await ledger.post(conn, [usage(project_id, "u", amount)], now_ms())
    async with db.read() as conn:
        alerts = list(await conn.execute(select(balance_alerts.c.balance, balance_alerts.c.available)))
    assert [(a.balance, a.available) for a in alerts] == [(D(40), D(40))]
    messages = await fresh.outbox()
    assert [m_type for m_type, _ in messages] == ["balance.low"]
    assert '"available":"40","balance":"40","mode":"live","threshold":"50","userId":"u"' in messages[0][1]


async def test_entries_past_the_storable_range_are_refused_one_by_one(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    near = from_micros(MAX_MICROS) - 1
    async with db.write() as conn:
        await ledger.post(conn, [LedgerEntry(project_id, MODE, "u", "usage", -near)], now_ms())
        entries = [
            usage(project_id, "u", "0.5"),  # fits: the balance is now -(MAX - 0.5)
            usage(project_id, "u", "1"),  # would pass -MAX: refused
            usage(project_id, "v", "1"),  # another user: fits
            usage(project_id, "u", "0.5"),  # exactly -MAX still fits
        ]
        result = await ledger.beyond_range(conn, entries)
    assert result == {1}
