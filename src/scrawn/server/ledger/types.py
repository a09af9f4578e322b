"""The ledger's typed values (docs/wallets.md#where-money-moves): what is posted, what a balance is, what a
posting answers. Nothing else crosses the ledger's boundary."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple, TypedDict

from scrawn.money import from_micros

ZERO = Decimal(0)

# The idempotency keys of the entries the server writes itself: void reversals, provider payments and
# refunds. One namespace with the keys callers give wallet calls, so those may not begin with these.
SERVER_KEY_PREFIXES = ("void:", "payment:", "refund:")

Scope = tuple[str, str, str]  # (project_id, mode, user_id): the unit a balance row and its lock cover


@dataclass(frozen=True, kw_only=True)
class _Details:
    """What an entry, to post or as stored, may say besides whose it is, its kind and its amount (by keyword
    only): the event or reservation it belongs to, its idempotency key with the fingerprint of what the key
    was used for, and a description."""

    event_id: str | None = None
    reservation_id: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class LedgerEntry(_Details):
    """One signed movement of a user's balance (negative = money taken), to post."""

    project_id: str
    mode: str
    user_id: str
    kind: str  # usage | payment | top_up | grant | adjustment | refund | debit | capture | expiry | void
    amount: Decimal
    expires_at: int | None = None  # Unix ms: a credit that expires becomes a credit lot
    id: str | None = None  # chosen by the ledger when None

    @property
    def scope(self) -> Scope:
        return (self.project_id, self.mode, self.user_id)


@dataclass(frozen=True)
class Entry(_Details):
    """A ledger entry as stored, with the expiry (Unix ms) of the credit lot it made, if any."""

    id: str
    user_id: str
    kind: str
    amount: Decimal
    created_at: int
    lot_expires_at: int | None = None


class Moved(NamedTuple):
    """A balance row as a batch left it, amounts in micro-units (the batch path converts only what it
    needs)."""

    user_id: str
    balance: int
    held: int
    spend_cap: int | None
    spend_period: int | None
    spent: int
    low_balance_threshold: int | None

    def in_units(self) -> BalanceRow:
        return BalanceRow(
            self.user_id,
            from_micros(self.balance),
            from_micros(self.held),
            _units(self.spend_cap),
            self.spend_period,
            from_micros(self.spent),
            _units(self.low_balance_threshold),
        )


def _units(micros: int | None) -> Decimal | None:
    return None if micros is None else from_micros(micros)


class UsageDebit(NamedTuple):
    """A stored usage event's debit to post: ``micros`` taken from the user's balance."""

    project_id: str
    mode: str
    user_id: str
    micros: int
    event_id: str | None = None


@dataclass(frozen=True)
class Balance:
    """A user's balance row. The spend controls are filled when read under the lock (``lock``), left at
    their defaults by ``read``; ``spent`` counts only the month ``period`` (yyyymm, UTC)."""

    user_id: str
    balance: Decimal
    held: Decimal
    spend_cap: Decimal | None = None
    period: int = 0
    spent: Decimal = ZERO
    low_balance_threshold: Decimal | None = None

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


class Limits(TypedDict, total=False):
    """A user's spend controls to set: None removes one, and one left out stays as it is."""

    spend_cap: Decimal | None
    low_balance_threshold: Decimal | None


@dataclass(frozen=True)
class BalanceRow:
    """A balance row as stored: ``spent`` of ``spend_period`` (possibly an earlier month)."""

    user_id: str
    balance: Decimal
    held: Decimal
    spend_cap: Decimal | None
    spend_period: int | None
    spent: Decimal
    low_balance_threshold: Decimal | None


@dataclass(frozen=True)
class Posted:
    """What posting one keyed entry answers: the entry, the balance after it, and whether the key had
    been applied already (then nothing changed)."""

    entry: Entry
    balance: Balance
    duplicate: bool
