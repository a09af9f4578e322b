"""Credits with an expiry ("lots") and per-user spend controls (docs/wallets.md).

Everything here runs inside a transaction that holds the user's balance row locked (``lock_balance``,
the balance upsert of a usage batch, or a sweeper's ``FOR UPDATE SKIP LOCKED``): the balance row is the
user's mutex, so lots are read without a lock of their own and every change to a lot is still a conditional
update on the values read (a lost race would fail the transaction instead of moving money twice).

The rules, in one place:
- A credit with an expiry becomes a lot; credit without one is the *permanent* part of the balance
  (``balance - Σ lot remaining``), spent last. Lots are consumed in ``(expires_at, id)`` order by every
  debit: wallet ``Debit``, reservation capture and usage events.
- Invariant: ``0 <= Σ remaining <= max(0, balance)``. So a credit that arrives while the user owes money
  pays the debt first, and only what is left of it can expire.
- At ``expires_at`` a lot's remainder expires (a ledger entry of kind ``expiry``), except the part needed to
  keep ``available = balance - held`` at zero for holds made before the expiry: holds are backed by the money
  that would be spent last. That part is consumed first by the captures, and expires as soon as the holds
  no longer need it (a release, a smaller capture, or a later credit).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError
from scrawn.money import format_amount
from scrawn.server.db.schema import balance_alerts, credit_lots, ledger_entries
from scrawn.server.webhooks import outbox

ZERO = Decimal(0)
BLOCKED_RECHECK_MS = 5_000  # a lot held back by holds is looked at again by sweepers this often
SPEND_KINDS = ("usage", "debit", "capture")  # what counts against the monthly spend cap


class LotRaceError(RuntimeError):
    """A lot changed under a lock that should have excluded every other writer: roll back, never guess."""


@dataclass(frozen=True)
class Lot:
    id: str
    user_id: str
    remaining: Decimal
    expires_at: int  # Unix ms
    expired: Decimal = ZERO
    expiry_count: int = 0
    due_at: int | None = None


def consumption_order(lot: Lot) -> tuple[int, str]:
    return lot.expires_at, lot.id


def plan_expiry(lots: Sequence[Lot], balance: Decimal, held: Decimal, now: int) -> list[tuple[Lot, Decimal]]:
    """(lot, amount to expire) for every lot past its expiry with something left, in consumption order.
    An amount of 0 means the lot is held back entirely by holds."""
    available = balance - held
    plan: list[tuple[Lot, Decimal]] = []
    for lot in sorted(lots, key=consumption_order):
        if lot.expires_at > now or lot.remaining <= 0:
            continue
        amount = min(lot.remaining, max(ZERO, available))
        plan.append((lot, amount))
        available -= amount
    return plan


def plan_consumption(lots: Sequence[Lot], amount: Decimal) -> list[tuple[Lot, Decimal]]:
    """(lot, amount taken) for a debit of ``amount``: soonest-expiring first; what the lots do not cover
    comes from the permanent part of the balance (or, for usage, takes it below zero)."""
    plan: list[tuple[Lot, Decimal]] = []
    left = amount
    for lot in sorted(lots, key=consumption_order):
        if left <= 0:
            break
        if lot.remaining <= 0:
            continue
        take = min(lot.remaining, left)
        plan.append((lot, take))
        left -= take
    return plan


def new_lot_remaining(amount: Decimal, balance_after: Decimal, lots_total: Decimal) -> Decimal:
    """What a new credit's lot keeps: the part not needed to pay what the user owed before it."""
    return max(ZERO, min(amount, balance_after - lots_total))


# Reading and writing lots --------------------------------------------------------------------------------


def _lot(row: Any) -> Lot:
    return Lot(
        id=row.id,
        user_id=row.user_id,
        remaining=row.remaining,
        expires_at=row.expires_at,
        expired=row.expired,
        expiry_count=row.expiry_count,
        due_at=row.due_at,
    )


async def live_lots(
    conn: AsyncConnection, project_id: str, mode: str, user_ids: Sequence[str], *, due_by: int | None = None
) -> dict[str, list[Lot]]:
    """The users' lots with something left (only those expired by ``due_by`` when given)."""
    found: dict[str, list[Lot]] = {}
    users = sorted(set(user_ids))
    for start in range(0, len(users), 500):
        stmt = select(credit_lots).where(
            credit_lots.c.project_id == project_id,
            credit_lots.c.mode == mode,
            credit_lots.c.user_id.in_(users[start : start + 500]),
            credit_lots.c.remaining > ZERO,
        )
        if due_by is not None:
            stmt = stmt.where(credit_lots.c.expires_at <= due_by)
        for row in await conn.execute(stmt):
            found.setdefault(row.user_id, []).append(_lot(row))
    for lots in found.values():
        lots.sort(key=consumption_order)
    return found


async def _update_lot(conn: AsyncConnection, project_id: str, mode: str, lot: Lot, **values: Any) -> None:
    result = await conn.execute(
        update(credit_lots)
        .where(
            credit_lots.c.project_id == project_id,
            credit_lots.c.mode == mode,
            credit_lots.c.id == lot.id,
            credit_lots.c.remaining == lot.remaining,
            credit_lots.c.expiry_count == lot.expiry_count,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise LotRaceError(f"credit lot {lot.id} changed concurrently")


async def expire_lots(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    lots: Sequence[Lot],
    balance: Decimal,
    held: Decimal,
    now: int,
) -> tuple[Decimal, list[Lot]]:
    """Expire what is due; returns (total expired, the lots as they are now). One ``expiry`` ledger entry
    per lot and expiry; the caller moves the balance row by ``-total``."""
    total = ZERO
    changed: dict[str, Lot] = {}
    for lot, amount in plan_expiry(lots, balance, held, now):
        if amount == 0:  # held back by holds: sweepers look again later, user operations at once
            if lot.due_at is None or lot.due_at <= now:
                await _update_lot(conn, project_id, mode, lot, due_at=now + BLOCKED_RECHECK_MS)
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
        await _update_lot(
            conn,
            project_id,
            mode,
            lot,
            remaining=after.remaining,
            expired=after.expired,
            expiry_count=after.expiry_count,
            due_at=after.due_at,
        )
        await conn.execute(
            ledger_entries.insert().values(
                project_id=project_id,
                mode=mode,
                id=str(uuid.uuid4()),
                user_id=user_id,
                kind="expiry",
                amount=-amount,
                description=f"expiry of credit {lot.id}",
                created_at=now,
            )
        )
        changed[lot.id] = after
        total += amount
    return total, [changed.get(lot.id, lot) for lot in lots]


async def consume_lots(
    conn: AsyncConnection, project_id: str, mode: str, lots: Sequence[Lot], amount: Decimal
) -> None:
    for lot, take in plan_consumption(lots, amount):
        left = lot.remaining - take
        await _update_lot(
            conn, project_id, mode, lot, remaining=left, due_at=lot.due_at if left > 0 else None
        )


async def create_lot(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    lot_id: str,
    user_id: str,
    amount: Decimal,
    remaining: Decimal,
    expires_at: int,
    now: int,
) -> None:
    await conn.execute(
        credit_lots.insert().values(
            project_id=project_id,
            mode=mode,
            id=lot_id,
            user_id=user_id,
            amount=amount,
            remaining=remaining,
            expired=ZERO,
            expiry_count=0,
            expires_at=expires_at,
            due_at=expires_at if remaining > 0 else None,
            created_at=now,
        )
    )


async def lots_of(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> list[Any]:
    """Every lot of a user, soonest-expiring first (for the CLI and dashboards)."""
    return list(
        await conn.execute(
            select(credit_lots)
            .where(
                credit_lots.c.project_id == project_id,
                credit_lots.c.mode == mode,
                credit_lots.c.user_id == user_id,
            )
            .order_by(credit_lots.c.expires_at, credit_lots.c.id)
        )
    )


# Spend controls -----------------------------------------------------------------------------------------


def period_of(ms: int) -> int:
    """The spend cap's window: the calendar month in UTC, as yyyymm."""
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return at.year * 100 + at.month


def period_text(period: int) -> str:
    return f"{period // 100:04d}-{period % 100:02d}"


class SpendCapExceeded(FailedPreconditionError):
    def __init__(self, cap: Decimal, spent: Decimal, held: Decimal, requested: Decimal, period: int) -> None:
        left = max(ZERO, cap - spent - held)
        super().__init__(
            f"Spend cap exceeded: amount: requested {format_amount(requested)} but only "
            f"{format_amount(left)} remains of the monthly spend cap {format_amount(cap)} (spent "
            f"{format_amount(spent)}, held {format_amount(held)} in {period_text(period)} UTC)",
            field="amount",
        )
        self.cap, self.spent, self.held, self.requested, self.period = cap, spent, held, requested, period


def check_spend_cap(cap: Decimal | None, spent: Decimal, held: Decimal, amount: Decimal, period: int) -> None:
    """Refuse a debit or hold that would take this month's spend plus active holds past the cap."""
    if cap is not None and spent + held + amount > cap:
        raise SpendCapExceeded(cap, spent, held, amount, period)


def crossed_below(threshold: Decimal | None, before: Decimal, after: Decimal) -> bool:
    return threshold is not None and before >= threshold > after


async def record_low_balance(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    *,
    threshold: Decimal,
    balance: Decimal,
    available: Decimal,
    now: int,
) -> None:
    await conn.execute(
        balance_alerts.insert().values(
            project_id=project_id,
            mode=mode,
            id=str(uuid.uuid4()),
            user_id=user_id,
            kind="balance.low",
            threshold=threshold,
            balance=balance,
            available=available,
            created_at=now,
        )
    )
    data = {
        "userId": user_id,
        "threshold": format_amount(threshold),
        "balance": format_amount(balance),
        "available": format_amount(available),
    }
    await outbox.enqueue(conn, project_id, mode, "balance.low", data)  # same transaction as the crossing
