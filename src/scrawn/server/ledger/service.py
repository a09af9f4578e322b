"""The one place money moves (docs/wallets.md#where-money-moves).

Every change to a balance goes through here, in the caller's transaction: usage events and voids as a batch
(``post``, ``post_reversal``), wallet credits, debits and payments as one keyed entry (``post_keyed``), holds
and captures of reservations (``hold``, ``release``, ``capture``), and the expiry sweep (``expire_due_lots``).
The rules live in ``rules.py`` and are applied here once (what a move sets off, lots and alerts, in
``settle.py``):
- a user's ``balance`` is the sum of their entries and ``held`` the sum of their active holds;
  ``available = balance - held``; wallet debits and holds never take available below zero, nor past the
  spend cap (``InsufficientCreditsError``, ``SpendCapExceededError``); usage may (it is postpaid);
- a debit consumes the user's credit lots soonest-expiring first, after expiring the ones already due; a
  credit with an expiry becomes a lot;
- ``usage``, ``debit`` and ``capture`` count towards the month's spend (``spent``), which saturates at the
  storable maximum instead of failing;
- available falling below the user's low-balance threshold records a ``balance.low`` alert and its webhook
  (outbox) message in the same transaction;
- users are locked in sorted order (one multi-row upsert for a batch), so concurrent writers cannot
  deadlock; a balance never passes what BIGINT micro-units hold.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import AlreadyExistsError, OutOfRangeError
from scrawn.money import MAX_MICROS, format_amount, from_micros, to_micros
from scrawn.server.db import bulk
from scrawn.server.db.engine import now_ms
from scrawn.server.ledger import batch_repository as batch_repo
from scrawn.server.ledger import repository as repo
from scrawn.server.ledger import settle
from scrawn.server.ledger.rules import (
    SPEND_KINDS,
    Lot,
    check_available,
    check_spend_cap,
    crossed_below,
    fingerprint,
    new_lot_remaining,
    period_of,
    period_text,
)
from scrawn.server.ledger.types import (
    ZERO,
    Balance,
    BalanceRow,
    Entry,
    LedgerEntry,
    Limits,
    Moved,
    Posted,
    Scope,
    UsageDebit,
)

MAX_AMOUNT = from_micros(MAX_MICROS)  # the most a balance row's BIGINT micro-units hold

__all__ = [
    "any_lot_due",
    "find_entry",
    "key_taken",
    "list_entries",
    "lots_of",
    "period_text",
    "usage_entry_of",
]

any_lot_due = repo.any_lot_due
find_entry = repo.entry_by_key
key_taken = repo.key_taken
lots_of = repo.lots_of
usage_entry_of = repo.usage_entry_of


# Reading balances -----------------------------------------------------------------------------------------


def _view(row: BalanceRow, now: int | None = None) -> Balance:
    period = period_of(now_ms() if now is None else now)
    return Balance(
        row.user_id,
        row.balance,
        row.held,
        spend_cap=row.spend_cap,
        period=period,
        spent=row.spent if row.spend_period == period else ZERO,
        low_balance_threshold=row.low_balance_threshold,
    )


async def read(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> Balance:
    row = await repo.read_balance(conn, project_id, mode, user_id)
    return Balance(user_id, row.balance, row.held) if row else Balance(user_id, ZERO, ZERO)


async def read_limits(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> Balance:
    """The balance with its spend controls (``spent`` of this month), unlocked."""
    row = await repo.read_balance(conn, project_id, mode, user_id)
    if row is None:
        return Balance(user_id, ZERO, ZERO, period=period_of(now_ms()))
    return _view(row)


async def lock(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> Balance:
    """The user's balance row, created if missing, locked for the rest of the transaction."""
    row = await repo.lock_balance(conn, project_id, mode, user_id)
    if row is None:  # a new user
        await repo.create_balance(conn, project_id, mode, user_id, now_ms())
        row = await repo.lock_balance(conn, project_id, mode, user_id)
        assert row is not None
    return _view(row)


async def lock_existing(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> BalanceRow | None:
    """The user's balance row as stored, locked; None when the user has none (nothing is created)."""
    return await repo.lock_balance(conn, project_id, mode, user_id)


async def set_limits(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, limits: Limits
) -> Balance:
    """Set ``spend_cap`` and/or ``low_balance_threshold`` (None removes one). Neither is retroactive."""
    view = await lock(conn, project_id, mode, user_id)
    if limits:
        await repo.write_balance(conn, project_id, mode, user_id, now=now_ms(), **limits)
    return replace(view, **limits)


async def list_entries(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, size: int, cursor: tuple[int, str] | None
) -> list[Entry]:
    return await repo.entries_page(conn, project_id, mode, user_id, size, cursor)


# The rules, applied once ----------------------------------------------------------------------------------


def check(view: Balance, amount: Decimal) -> None:
    """A wallet debit or hold of ``amount``: refused past available, then past the spend cap."""
    check_available(view.balance, view.available, amount)
    check_spend_cap(view.spend_cap, view.spent, view.held, amount, view.period)


# One user, under the lock of ``lock`` ---------------------------------------------------------------------


async def _move(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    view: Balance,
    *,
    balance: Decimal = ZERO,
    held: Decimal = ZERO,
    spend: Decimal = ZERO,
) -> Balance:
    """Move a locked balance row; records a ``balance.low`` alert when available crosses the threshold."""
    now = now_ms()
    new = replace(view, balance=view.balance + balance, held=view.held + held, spent=view.spent + spend)
    if abs(new.balance) > MAX_AMOUNT or abs(new.held) > MAX_AMOUNT:  # rolls the caller's transaction back
        raise OutOfRangeError(
            "amount: this user's balance would pass the storable range (about ±9.2 × 10¹² minor units); "
            "nothing was changed",
            field="amount",
        )
    # ``spent`` only counts towards a cap (itself at most MAX_AMOUNT): it saturates instead of failing.
    new = replace(new, spent=min(new.spent, MAX_AMOUNT))
    await repo.write_balance(
        conn,
        project_id,
        mode,
        view.user_id,
        now=now,
        balance=new.balance,
        held=new.held,
        spent=new.spent,
        spend_period=new.period,
    )
    if crossed_below(view.low_balance_threshold, view.available, new.available):
        assert new.low_balance_threshold is not None
        scope = (project_id, mode, view.user_id)
        await settle.alert(conn, scope, new.low_balance_threshold, new.balance, new.available, now)
    return new


async def settle_expired(
    conn: AsyncConnection, project_id: str, mode: str, view: Balance, *, due_by: int | None = None
) -> Balance:
    """Expire the user's credit that is due (on the spot: a sweeper may not have come by yet). The
    balance row must be locked."""
    now = now_ms() if due_by is None else due_by
    found = (await repo.live_lots(conn, project_id, mode, [view.user_id], due_by=now)).get(view.user_id)
    return (await _settle(conn, project_id, mode, view, found or [], now))[0]


async def _settle(
    conn: AsyncConnection, project_id: str, mode: str, view: Balance, found: list[Lot], now: int
) -> tuple[Balance, list[Lot]]:
    """``settle_expired`` on lots already read; returns the balance and the lots as they are now."""
    if not any(lot.expires_at <= now for lot in found):
        return view, found
    scope = (project_id, mode, view.user_id)
    gone, found = await settle.expire(conn, scope, found, view.balance, view.held, now)
    return (await _move(conn, project_id, mode, view, balance=-gone) if gone else view), found


async def post_keyed(conn: AsyncConnection, entry: LedgerEntry, *, require_available: bool) -> Posted:
    """Apply a signed entry once per idempotency key (a retry answers the first posting, ``duplicate``).

    A credit with ``expires_at`` becomes a credit lot; a debit consumes lots soonest-expiring first and,
    with ``require_available``, is refused past available or the user's spend cap."""
    project_id, mode, user_id, amount = entry.project_id, entry.mode, entry.user_id, entry.amount
    assert entry.idempotency_key is not None
    view = await lock(conn, project_id, mode, user_id)
    content = {"expires_at": entry.expires_at} if entry.expires_at is not None else {}
    print_ = fingerprint(
        user=user_id, kind=entry.kind, amount=format_amount(amount), description=entry.description, **content
    )
    existing = await repo.entry_by_key(conn, project_id, mode, entry.idempotency_key)
    if existing is not None:
        if existing.fingerprint != print_:
            raise AlreadyExistsError(
                "idempotencyKey: already used for a different transaction", field="idempotencyKey"
            )
        return Posted(existing, view, True)
    now = now_ms()
    found = (await repo.live_lots(conn, project_id, mode, [user_id])).get(user_id, [])
    view, found = await _settle(conn, project_id, mode, view, found, now)  # what expired before this
    found = [lot for lot in found if lot.remaining > 0]
    spend = -amount if amount < 0 and entry.kind in SPEND_KINDS else ZERO
    if require_available and amount < 0:
        check(view, -amount)
    entry = replace(entry, fingerprint=print_, id=entry.id or str(uuid.uuid4()))
    assert entry.id is not None
    await repo.insert_entries(conn, [(entry, entry.id)], now)
    if amount < 0:
        await settle.consume(conn, project_id, mode, found, -amount)
    elif entry.expires_at is not None:
        lots_total = sum((lot.remaining for lot in found), ZERO)
        await repo.create_lot(
            conn,
            project_id,
            mode,
            lot_id=entry.id,
            user_id=user_id,
            amount=amount,
            remaining=new_lot_remaining(amount, view.balance + amount, lots_total),
            expires_at=entry.expires_at,
            now=now,
        )
    view = await _move(conn, project_id, mode, view, balance=amount, spend=spend)
    if amount > 0:  # more money may free credit that holds were keeping from expiring
        view, _ = await _settle(conn, project_id, mode, view, found, now)
    stored = Entry(
        entry.id,
        user_id,
        entry.kind,
        amount,
        now,
        idempotency_key=entry.idempotency_key,
        fingerprint=print_,
        description=entry.description,
        lot_expires_at=entry.expires_at,
    )
    return Posted(stored, view, False)


async def hold(conn: AsyncConnection, project_id: str, mode: str, view: Balance, amount: Decimal) -> Balance:
    """Hold ``amount`` of a locked, settled balance for a reservation: refused like a wallet debit."""
    check(view, amount)
    return await _move(conn, project_id, mode, view, held=amount)


async def release(
    conn: AsyncConnection, project_id: str, mode: str, view: Balance, amount: Decimal
) -> Balance:
    """Let go of a hold on a locked balance; credit the hold kept from expiring expires now."""
    view = await _move(conn, project_id, mode, view, held=-amount)
    return await settle_expired(conn, project_id, mode, view)


async def capture(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    *,
    reservation_id: str,
    held: Decimal,
    actual: Decimal,
    description: str | None,
) -> tuple[str, Balance]:
    """Confirm a hold of ``held`` with a ``capture`` entry of ``actual`` (at most ``held``); the rest is
    released. Returns (the entry's id, the balance after)."""
    view = await settle_expired(conn, project_id, mode, await lock(conn, project_id, mode, user_id))
    entry = LedgerEntry(
        project_id, mode, user_id, "capture", -actual, reservation_id=reservation_id, description=description
    )
    transaction_id = str(uuid.uuid4())
    await repo.insert_entries(conn, [(entry, transaction_id)], now_ms())
    found = (await repo.live_lots(conn, project_id, mode, [user_id])).get(user_id)
    if found:
        await settle.consume(conn, project_id, mode, found, actual)
    view = await _move(conn, project_id, mode, view, balance=-actual, held=-held, spend=actual)
    return transaction_id, await settle_expired(conn, project_id, mode, view)


async def expire_due_lots(conn: AsyncConnection, limit: int = 500) -> int:
    """Expire credit that is due, in any project; returns how many lots were looked at. Safe on many
    processes at once: each user's balance row is taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a
    user another transaction holds is left for the next sweep), lots change only under that lock and by
    conditional updates, so each expiry entry is written once."""
    now = now_ms()
    looked_at, users = await repo.users_with_lots_due(conn, now, limit)
    skip = conn.dialect.name == "postgresql"
    for scope in users:
        row = await repo.lock_balance(conn, *scope, skip_locked=skip)
        if row is None:  # another process holds this user: it expires what is due, or the next sweep does
            continue
        await repo.forget_spent_lots(conn, scope, now)
        await settle_expired(conn, scope[0], scope[1], _view(row), due_by=now)
    return looked_at


# Batches: many users at once ------------------------------------------------------------------------------


async def beyond_range(conn: AsyncConnection, entries: Sequence[LedgerEntry]) -> set[int]:
    """The entries (by index, taken in order) that would take their user's balance past what BIGINT
    micro-units hold. Refused one by one: otherwise SQLite silently turns the balance into a float and
    PostgreSQL fails the whole batch."""
    return await moves_beyond_range(conn, [(e.scope, to_micros(e.amount)) for e in entries])


async def moves_beyond_range(conn: AsyncConnection, moves: Sequence[tuple[Scope, int]]) -> set[int]:
    """``beyond_range`` of (user, micro-units) balance moves (usage debits are negative)."""
    by_scope: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (project_id, mode, user_id), _ in moves:
        by_scope[(project_id, mode)].add(user_id)
    # A balance within MAX - Σ|moves| of zero cannot leave the range however the moves fall: only the
    # others are read, and a user without one is safe.
    bound = max(MAX_MICROS - sum(abs(amount) for _, amount in moves), -1)
    balance: dict[Scope, int] = {}
    for (project_id, mode), users in by_scope.items():
        near = await batch_repo.balances_micros(conn, project_id, mode, sorted(users), beyond=bound)
        for user_id, micros in near.items():
            balance[(project_id, mode, user_id)] = micros
    refused: set[int] = set()
    for i, (scope, amount) in enumerate(moves):
        if scope not in balance and bound >= 0:
            continue
        after = balance.get(scope, 0) + amount
        if -MAX_MICROS <= after <= MAX_MICROS:
            balance[scope] = after
        else:
            refused.add(i)
    return refused


async def post(conn: AsyncConnection, entries: Sequence[LedgerEntry], now: int) -> None:
    """Post unkeyed entries (usage debits) for many users at once: the entries in one statement, then each
    user's balance row moved by their sum, ``usage``/``debit``/``capture`` counted as spend."""
    if not entries:
        return
    await repo.insert_entries(conn, [(e, e.id or str(uuid.uuid4())) for e in entries], now)
    deltas: dict[Scope, int] = defaultdict(int)
    spend: dict[Scope, int] = defaultdict(int)
    for e in entries:
        micros = to_micros(e.amount)
        deltas[e.scope] += micros
        if e.kind in SPEND_KINDS:
            spend[e.scope] -= micros
    await _apply(conn, deltas, spend, now)


async def post_usage(conn: AsyncConnection, debits: Sequence[UsageDebit], now: int) -> None:
    """``post`` of usage debits, the batch path: rows built as tuples, amounts in micro-units throughout,
    one balance move per user, and only the moved rows the rules still look at read back."""
    if not debits:
        return
    ids = bulk.uuids(len(debits))
    rows = [
        (d.project_id, d.mode, i, d.user_id, "usage", -d.micros, d.event_id, now)
        for d, i in zip(debits, ids, strict=True)
    ]
    await batch_repo.insert_usage(conn, rows)
    deltas = _usage_deltas(debits)
    moves = [(scope, delta, -delta) for scope, delta in sorted(deltas.items())]  # usage is spend
    flagged = await batch_repo.move_balances_quietly(conn, moves, now, period_of(now))
    await settle.moved_rows(conn, deltas, flagged, now)


async def settle_usage(
    conn: AsyncConnection, debits: Sequence[UsageDebit], flagged: dict[Scope, Moved], now: int
) -> None:
    """The rest of ``post_usage`` once one statement has inserted the entries and moved the balances
    (``batch_repository.post_usage_ctes``, PostgreSQL): lots and low-balance alerts, for the ``flagged``
    rows."""
    if flagged:
        await settle.moved_rows(conn, _usage_deltas(debits), flagged, now)


def _usage_deltas(debits: Sequence[UsageDebit]) -> dict[Scope, int]:
    """Each user's balance move in micro-units."""
    deltas: dict[Scope, int] = defaultdict(int)
    for d in debits:
        deltas[(d.project_id, d.mode, d.user_id)] -= d.micros
    return deltas


async def post_reversal(
    conn: AsyncConnection, entry: LedgerEntry, locked: BalanceRow | None, *, spent_at: int, now: int
) -> str | None:
    """Credit back a usage debit spent at ``spent_at`` (Unix ms) with a keyed entry: its id, or None when
    the key is taken (nothing moved). ``locked`` is the user's balance row, read under its lock."""
    entry_id = str(uuid.uuid4())
    if not await repo.insert_entry_once(conn, entry, entry_id, now):
        return None
    # ``spent`` gives the debit back when it was counted in the month being counted now; an earlier
    # month's count has closed.
    period = period_of(now)
    back = ZERO
    if locked is not None and locked.spend_period == period and period_of(spent_at) == period:
        back = min(entry.amount, locked.spent)
    await _apply(conn, {entry.scope: to_micros(entry.amount)}, {entry.scope: -to_micros(back)}, now)
    return entry_id


async def _apply(conn: AsyncConnection, deltas: dict[Scope, int], spend: dict[Scope, int], now: int) -> None:
    """Move balance rows by micro-units, locking users in sorted order so concurrent batches cannot
    deadlock. In the same transaction: a negative delta consumes the user's credit lots soonest-expiring
    first, after expiring those already due; ``spend`` counts towards the monthly spend cap; and a fall of
    available below the user's low-balance threshold is recorded as a ``balance.low`` alert."""
    ordered = sorted(deltas.items())
    rows = [(key, delta, spend.get(key, 0)) for key, delta in ordered]
    after = await batch_repo.move_balances(conn, rows, now, period_of(now))
    await settle.moved_rows(conn, deltas, after, now)
