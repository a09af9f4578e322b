"""The pure rules of the ledger (docs/wallets.md): credits with an expiry ("lots"), spend caps,
low-balance crossings. No I/O: ``ledger/service.py`` applies them.

They are applied inside a transaction that holds the user's balance row locked (``service.lock``,
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

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from scrawn.errors import InsufficientCreditsError, SpendCapExceededError
from scrawn.money import format_amount

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
    amount: Decimal = ZERO  # what the credit gave


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


# Spend controls -----------------------------------------------------------------------------------------


def period_of(ms: int) -> int:
    """The spend cap's window: the calendar month in UTC, as yyyymm."""
    at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return at.year * 100 + at.month


def period_text(period: int) -> str:
    return f"{period // 100:04d}-{period % 100:02d}"


def check_available(balance: Decimal, available: Decimal, amount: Decimal) -> None:
    """Refuse a wallet debit or hold that would take available below zero (usage events may: postpaid)."""
    if amount > available:
        raise InsufficientCreditsError(
            f"Insufficient funds: amount: requested {format_amount(amount)} but available is "
            f"{format_amount(available)} (balance {format_amount(balance)})",
            field="amount",
            current_balance=balance,
            available=available,
            requested_amount=amount,
        )


def check_spend_cap(cap: Decimal | None, spent: Decimal, held: Decimal, amount: Decimal, period: int) -> None:
    """Refuse a debit or hold that would take this month's spend plus active holds past the cap."""
    if cap is not None and spent + held + amount > cap:
        left = max(ZERO, cap - spent - held)
        raise SpendCapExceededError(
            f"Spend cap exceeded: amount: requested {format_amount(amount)} but only "
            f"{format_amount(left)} remains of the monthly spend cap {format_amount(cap)} (spent "
            f"{format_amount(spent)}, held {format_amount(held)} in {period_text(period)} UTC)",
            field="amount",
            spend_cap=cap,
            spent=spent,
            held=held,
            requested_amount=amount,
            period=period_text(period),
        )


def crossed_below(threshold: Decimal | None, before: Decimal, after: Decimal) -> bool:
    return threshold is not None and before >= threshold > after


def fingerprint(**content: object) -> str:
    """What a keyed request asked for: a retry with the same key must ask for the same."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
