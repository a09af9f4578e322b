"""What a balance move sets off, applied once for the keyed and the batch paths of ``service.py``
(docs/wallets.md#where-money-moves): credit that is due expires (one ``expiry`` entry per lot and expiry), a
debit consumes the user's credit lots soonest-expiring first, and available falling below the user's
low-balance threshold records a ``balance.low`` alert and its webhook (outbox) message in the same
transaction. The balance rows are locked, or moved by the statement, before any of it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount, from_micros, to_micros
from scrawn.server.ledger import batch_repository as batch_repo
from scrawn.server.ledger import repository as repo
from scrawn.server.ledger.rules import BLOCKED_RECHECK_MS, Lot, plan_consumption, plan_expiry
from scrawn.server.ledger.types import ZERO, LedgerEntry, Moved, Scope
from scrawn.server.webhooks import outbox


async def alert(
    conn: AsyncConnection, scope: Scope, threshold: Decimal, balance: Decimal, available: Decimal, now: int
) -> None:
    """Record a ``balance.low`` alert of the user in ``scope`` and its webhook message."""
    await repo.insert_alert(conn, scope, threshold=threshold, balance=balance, available=available, now=now)
    data = {
        "userId": scope[2],
        "threshold": format_amount(threshold),
        "balance": format_amount(balance),
        "available": format_amount(available),
    }
    await outbox.enqueue(conn, scope[0], scope[1], "balance.low", data)  # same transaction as the crossing


async def expire(
    conn: AsyncConnection,
    scope: Scope,
    lots: Sequence[Lot],
    balance: Decimal,
    held: Decimal,
    now: int,
) -> tuple[Decimal, list[Lot]]:
    """Expire what is due; returns (total expired, the lots as they are now). One ``expiry`` entry per lot
    and expiry; the caller moves the balance row by ``-total``."""
    project_id, mode, user_id = scope
    total = ZERO
    changed: dict[str, Lot] = {}
    for lot, amount in plan_expiry(lots, balance, held, now):
        if amount == 0:  # held back by holds: sweepers look again later, user operations at once
            if lot.due_at is None or lot.due_at <= now:
                await repo.update_lot(conn, project_id, mode, lot, due_at=now + BLOCKED_RECHECK_MS)
                changed[lot.id] = replace(lot, due_at=now + BLOCKED_RECHECK_MS)
            continue
        left = lot.remaining - amount
        after = replace(
            lot,
            remaining=left,
            expired=lot.expired + amount,
            expiry_count=lot.expiry_count + 1,
            due_at=None if left == 0 else now + BLOCKED_RECHECK_MS,
        )
        await repo.update_lot(
            conn,
            project_id,
            mode,
            lot,
            remaining=after.remaining,
            expired=after.expired,
            expiry_count=after.expiry_count,
            due_at=after.due_at,
        )
        expiry = LedgerEntry(
            project_id, mode, user_id, "expiry", -amount, description=f"expiry of credit {lot.id}"
        )
        await repo.insert_entries(conn, [(expiry, str(uuid.uuid4()))], now)
        changed[lot.id] = after
        total += amount
    return total, [changed.get(lot.id, lot) for lot in lots]


async def consume(
    conn: AsyncConnection, project_id: str, mode: str, lots: Sequence[Lot], amount: Decimal
) -> None:
    """Take a debit of ``amount`` from the lots, soonest-expiring first."""
    for lot, take in plan_consumption(lots, amount):
        left = lot.remaining - take
        await repo.update_lot(
            conn, project_id, mode, lot, remaining=left, due_at=lot.due_at if left > 0 else None
        )


async def moved_rows(
    conn: AsyncConnection, deltas: dict[Scope, int], after: dict[Scope, Moved], now: int
) -> None:
    """After balance rows moved by ``deltas``: lots and low-balance alerts for the rows in ``after`` (every
    moved row, or only those with a threshold or live lots: the others have nothing to settle)."""
    expired = await _settle_lots(conn, deltas, after, now)
    for key in sorted(after):
        row, delta, gone = after[key], deltas[key], expired.get(key, 0)
        if gone:
            await repo.set_balance(conn, key, from_micros(row.balance - gone))
        threshold = row.low_balance_threshold
        if threshold is None:
            continue
        before, available = row.balance - delta - row.held, row.balance - gone - row.held
        if before >= threshold > available:
            balance, left = from_micros(row.balance - gone), from_micros(available)
            await alert(conn, key, from_micros(threshold), balance, left, now)


async def _settle_lots(
    conn: AsyncConnection, deltas: dict[Scope, int], after: dict[Scope, Moved], now: int
) -> dict[Scope, int]:
    """Debited users' lots: expire what was due before these debits, then consume them. Returns what expired
    per user in micro-units (their balance rows still have to move by it)."""
    by_scope: dict[tuple[str, str], list[str]] = defaultdict(list)
    for project_id, mode, user_id in after:
        if deltas[(project_id, mode, user_id)] < 0:
            by_scope[(project_id, mode)].append(user_id)
    expired: dict[Scope, int] = {}
    for (project_id, mode), debited in sorted(by_scope.items()):
        users = await batch_repo.with_live_lots(conn, project_id, mode, debited)
        found = await repo.live_lots(conn, project_id, mode, sorted(users)) if users else {}
        for user_id in sorted(found):
            key = (project_id, mode, user_id)
            row, delta = after[key], deltas[key]
            before, held = from_micros(row.balance - delta), from_micros(row.held)
            gone, remaining = await expire(conn, key, found[user_id], before, held, now)
            await consume(conn, project_id, mode, remaining, from_micros(-delta))
            if gone:
                expired[key] = to_micros(gone)
    return expired
