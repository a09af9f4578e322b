"""Prepaid wallets and reservations on the ledger (DESIGN §5).

Invariants, kept in every transaction that touches money:
- a user's ``balances.balance`` is the sum of their ledger entries, and ``held`` the sum of their active
  reservations; ``available = balance - held``;
- ``Debit`` and reservations never take available below zero (usage events may: they are postpaid);
- locks are taken reservation row first, then balance row, so concurrent calls cannot deadlock; on
  PostgreSQL with ``SELECT … FOR UPDATE``, on SQLite by the single ``BEGIN IMMEDIATE`` writer;
- credits with an expiry, spend caps and low-balance alerts are kept under the same balance-row lock
  (``wallets/lots.py``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    OutOfRangeError,
    ValidationError,
)
from scrawn.money import MAX_MICROS, MoneyError, format_amount, from_micros, parse_decimal, to_micros
from scrawn.server.clock import iso
from scrawn.server.db.engine import dialect_insert, now_ms
from scrawn.server.db.schema import balances, credit_lots, ledger_entries, reservations
from scrawn.server.wallets import lots
from scrawn.server.webhooks import outbox

CREDIT_KINDS = ("grant", "top_up", "adjustment")
DEFAULT_TTL, MAX_TTL = 300, 86_400
MAX_USER_ID, MAX_KEY, MAX_DESCRIPTION = 256, 255, 255
MAX_AMOUNT = from_micros(MAX_MICROS)  # the most a balance row's BIGINT micro-units hold
DEFAULT_PAGE, MAX_PAGE = 50, 500


class InsufficientFunds(FailedPreconditionError):
    def __init__(self, balance: Decimal, available: Decimal, requested: Decimal) -> None:
        super().__init__(
            f"Insufficient funds: amount: requested {format_amount(requested)} but available is "
            f"{format_amount(available)} (balance {format_amount(balance)})",
            field="amount",
        )
        self.balance, self.available, self.requested = balance, available, requested


@dataclass(frozen=True)
class BalanceView:
    user_id: str
    balance: Decimal
    held: Decimal
    # Spend controls; read with the lock (``lock_balance``), left at their defaults by ``read_balance``.
    spend_cap: Decimal | None = None
    period: int = 0  # yyyymm (UTC) that ``spent`` counts
    spent: Decimal = Decimal(0)
    low_balance_threshold: Decimal | None = None

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context="Wallet validation failed")


def check_user(user_id: str) -> str:
    if not user_id or not user_id.strip():
        raise _fail("userId", "must be a non-empty string")
    if len(user_id) > MAX_USER_ID or "\x00" in user_id:
        raise _fail("userId", f"must be at most {MAX_USER_ID} characters, without NUL")
    return user_id


def check_amount(field: str, text: str, *, allow_zero: bool = False) -> Decimal:
    if not text:
        raise _fail(field, "is required (a decimal string in minor units)")
    try:
        amount = parse_decimal(text)
        to_micros(amount)
    except MoneyError as e:
        raise _fail(field, str(e)) from None
    if amount < 0 or (amount == 0 and not allow_zero):
        raise _fail(field, "must be greater than zero" if not allow_zero else "must not be negative")
    if to_micros(amount) == 0 and amount != 0:
        raise _fail(field, "is smaller than one micro-unit")
    return from_micros(to_micros(amount))  # rounded once, here (half-even): what the ledger records


def check_key(key: str) -> str:
    if not key or not key.strip():
        raise _fail("idempotencyKey", "is required so that a retry is never applied twice")
    if len(key) > MAX_KEY or "\x00" in key:
        raise _fail("idempotencyKey", f"must be at most {MAX_KEY} characters, without NUL")
    return key


def check_description(text: str) -> str | None:
    if len(text) > MAX_DESCRIPTION or "\x00" in text:
        raise _fail("description", f"must be at most {MAX_DESCRIPTION} characters, without NUL")
    return text or None


def check_ttl(seconds: int, *, default: int | None = DEFAULT_TTL) -> int:
    if seconds == 0 and default is not None:
        return default
    if not 1 <= seconds <= MAX_TTL:
        raise _fail("ttlSeconds", f"must be 1 to {MAX_TTL} seconds")
    return seconds


MAX_EXPIRES_AT = 253_402_300_799  # 9999-12-31T23:59:59Z


def check_expires_at(seconds: int | None, *, now: int | None = None) -> int | None:
    """A credit's expiry, given in Unix seconds (None = never); returned in Unix ms."""
    if seconds is None:
        return None
    current = now_ms() if now is None else now
    if seconds * 1000 <= current:
        raise _fail("expiresAt", "must be in the future (Unix seconds)")
    if seconds > MAX_EXPIRES_AT:
        raise _fail("expiresAt", f"must be at most {MAX_EXPIRES_AT} (9999-12-31, Unix seconds)")
    return seconds * 1000


def check_kind(kind: str) -> str:
    kind = kind or "grant"
    if kind not in CREDIT_KINDS:
        raise _fail("kind", f"must be one of {', '.join(CREDIT_KINDS)}")
    return kind


def fingerprint(**content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


async def lock_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> BalanceView:
    """The user's balance row, created if missing, locked for the rest of the transaction."""
    row = (await conn.execute(_locked_row(project_id, mode, user_id))).first()
    if row is None:  # a new user (a concurrent twin may create it first: then ours does nothing)
        await conn.execute(
            dialect_insert(conn, balances)
            .values(
                project_id=project_id,
                mode=mode,
                user_id=user_id,
                balance=Decimal(0),
                held=Decimal(0),
                updated_at=now_ms(),
            )
            .on_conflict_do_nothing()
        )
        row = (await conn.execute(_locked_row(project_id, mode, user_id))).one()
    return _locked_view(user_id, row)


def _locked_row(project_id: str, mode: str, user_id: str, *, skip_locked: bool = False) -> Any:
    return (
        select(
            balances.c.balance,
            balances.c.held,
            balances.c.spend_cap,
            balances.c.spend_period,
            balances.c.spent,
            balances.c.low_balance_threshold,
        )
        .where(balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id)
        .with_for_update(skip_locked=skip_locked)
    )


def _locked_view(user_id: str, row: Any) -> BalanceView:
    period = lots.period_of(now_ms())
    return BalanceView(
        user_id,
        row.balance,
        row.held,
        spend_cap=row.spend_cap,
        period=period,
        spent=row.spent if row.spend_period == period else Decimal(0),
        low_balance_threshold=row.low_balance_threshold,
    )


async def read_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> BalanceView:
    row = (
        await conn.execute(
            select(balances.c.balance, balances.c.held).where(
                balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id
            )
        )
    ).first()
    return (
        BalanceView(user_id, row.balance, row.held) if row else BalanceView(user_id, Decimal(0), Decimal(0))
    )


async def _move(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    view: BalanceView,
    *,
    balance: Decimal = Decimal(0),
    held: Decimal = Decimal(0),
    spend: Decimal = Decimal(0),
) -> BalanceView:
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
    await conn.execute(
        update(balances)
        .where(
            balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == view.user_id
        )
        .values(balance=new.balance, held=new.held, spent=new.spent, spend_period=new.period, updated_at=now)
    )
    if lots.crossed_below(view.low_balance_threshold, view.available, new.available):
        assert new.low_balance_threshold is not None
        await lots.record_low_balance(
            conn,
            project_id,
            mode,
            view.user_id,
            threshold=new.low_balance_threshold,
            balance=new.balance,
            available=new.available,
            now=now,
        )
    return new


async def settle_expired(
    conn: AsyncConnection, project_id: str, mode: str, view: BalanceView, *, due_by: int | None = None
) -> BalanceView:
    """Expire the user's credit that is due (on the spot: a sweeper may not have come by yet). The
    balance row must be locked."""
    now = now_ms() if due_by is None else due_by
    found = (await lots.live_lots(conn, project_id, mode, [view.user_id], due_by=now)).get(view.user_id)
    return (await _settle(conn, project_id, mode, view, found or [], now))[0]


async def _settle(
    conn: AsyncConnection, project_id: str, mode: str, view: BalanceView, found: list[lots.Lot], now: int
) -> tuple[BalanceView, list[lots.Lot]]:
    """``settle_expired`` on lots already read; returns the balance and the lots as they are now."""
    if not any(lot.expires_at <= now for lot in found):
        return view, found
    gone, found = await lots.expire_lots(
        conn, project_id, mode, view.user_id, found, view.balance, view.held, now
    )
    return (await _move(conn, project_id, mode, view, balance=-gone) if gone else view), found


async def _consume(conn: AsyncConnection, project_id: str, mode: str, user_id: str, amount: Decimal) -> None:
    found = (await lots.live_lots(conn, project_id, mode, [user_id])).get(user_id)
    if found:
        await lots.consume_lots(conn, project_id, mode, found, amount)


def _live(found: list[lots.Lot]) -> list[lots.Lot]:
    return [lot for lot in found if lot.remaining > 0]


def _entries() -> Any:
    """Ledger entries with the expiry (``lot_expires_at``, Unix ms) of the credit each one made, if any. A
    correlated primary-key lookup rather than a join, so that the planner keeps using the entries' own
    indexes (SQLite's statistics count the NULL idempotency keys of usage entries as one value)."""
    lot_expiry = (
        select(credit_lots.c.expires_at)
        .where(
            credit_lots.c.project_id == ledger_entries.c.project_id,
            credit_lots.c.mode == ledger_entries.c.mode,
            credit_lots.c.id == ledger_entries.c.id,
        )
        .scalar_subquery()
    )
    return select(ledger_entries, lot_expiry.label("lot_expires_at"))


async def _entry_by_key(conn: AsyncConnection, project_id: str, mode: str, key: str) -> Any:
    return (
        await conn.execute(
            _entries().where(
                ledger_entries.c.project_id == project_id,
                ledger_entries.c.mode == mode,
                ledger_entries.c.idempotency_key == key,
            )
        )
    ).first()


async def post_entry(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    kind: str,
    amount: Decimal,
    key: str,
    description: str | None,
    check_available: bool,
    expires_at: int | None = None,
) -> tuple[Any, BalanceView, bool]:
    """Apply a signed ledger entry once per idempotency key. Returns (entry row, balance, duplicate).

    A credit with ``expires_at`` (Unix ms) becomes a credit lot; a debit consumes lots soonest-expiring
    first and, with ``check_available``, is refused past available or the user's spend cap."""
    view = await lock_balance(conn, project_id, mode, user_id)
    content: dict[str, Any] = {"expires_at": expires_at} if expires_at is not None else {}
    print_ = fingerprint(
        user=user_id, kind=kind, amount=format_amount(amount), description=description, **content
    )
    existing = await _entry_by_key(conn, project_id, mode, key)
    if existing is not None:
        if existing.fingerprint != print_:
            raise AlreadyExistsError(
                "idempotencyKey: already used for a different transaction", field="idempotencyKey"
            )
        return existing, view, True
    now = now_ms()
    found = (await lots.live_lots(conn, project_id, mode, [user_id])).get(user_id, [])
    view, found = await _settle(conn, project_id, mode, view, found, now)  # what expired before this
    found = _live(found)
    spend = -amount if amount < 0 and kind in lots.SPEND_KINDS else Decimal(0)
    if check_available and amount < 0:
        if -amount > view.available:
            raise InsufficientFunds(view.balance, view.available, -amount)
        lots.check_spend_cap(view.spend_cap, view.spent, view.held, -amount, view.period)
    entry: dict[str, Any] = {
        "project_id": project_id,
        "mode": mode,
        "id": str(uuid.uuid4()),
        "user_id": user_id,
        "kind": kind,
        "amount": amount,
        "idempotency_key": key,
        "fingerprint": print_,
        "description": description,
        "created_at": now,
    }
    await conn.execute(ledger_entries.insert().values(**entry))
    if amount < 0:
        await lots.consume_lots(conn, project_id, mode, found, -amount)
    elif expires_at is not None:
        lots_total = sum((lot.remaining for lot in found), Decimal(0))
        await lots.create_lot(
            conn,
            project_id,
            mode,
            lot_id=entry["id"],
            user_id=user_id,
            amount=amount,
            remaining=lots.new_lot_remaining(amount, view.balance + amount, lots_total),
            expires_at=expires_at,
            now=entry["created_at"],
        )
    view = await _move(conn, project_id, mode, view, balance=amount, spend=spend)
    if amount > 0:  # more money may free credit that holds were keeping from expiring
        view, _ = await _settle(conn, project_id, mode, view, found, now)
    row = SimpleNamespace(**entry, event_id=None, reservation_id=None, lot_expires_at=expires_at)
    return row, view, False


async def credit(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    amount: Decimal,
    kind: str,
    key: str,
    description: str | None,
    expires_at: int | None,
) -> tuple[Any, BalanceView, bool]:
    """``Credit`` (and ``scrawn wallets credit``): inputs already checked with the ``check_*`` functions."""
    return await post_entry(
        conn,
        project_id,
        mode,
        user_id=user_id,
        kind=kind,
        amount=amount,
        key=key,
        description=description,
        check_available=False,
        expires_at=expires_at,
    )


async def debit(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    amount: Decimal,
    key: str,
    description: str | None,
) -> tuple[Any, BalanceView, bool]:
    """``Debit`` (and ``scrawn wallets debit``): atomic, refused past available or the spend cap."""
    return await post_entry(
        conn,
        project_id,
        mode,
        user_id=user_id,
        kind="debit",
        amount=-amount,
        key=key,
        description=description,
        check_available=True,
    )


# Reservations -------------------------------------------------------------------------------------------


async def create_reservation(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    amount: Decimal,
    ttl: int,
    key: str,
    description: str | None,
) -> Any:
    print_ = fingerprint(user=user_id, amount=format_amount(amount), ttl=ttl, description=description)
    existing = (
        await conn.execute(
            select(reservations).where(
                reservations.c.project_id == project_id,
                reservations.c.mode == mode,
                reservations.c.idempotency_key == key,
            )
        )
    ).first()
    if existing is not None:
        if existing.fingerprint != print_:
            raise AlreadyExistsError(
                "idempotencyKey: already used for a different reservation", field="idempotencyKey"
            )
        return existing
    view = await lock_balance(conn, project_id, mode, user_id)
    existing = (
        await conn.execute(
            select(reservations).where(  # re-read under the lock (a concurrent twin)
                reservations.c.project_id == project_id,
                reservations.c.mode == mode,
                reservations.c.idempotency_key == key,
            )
        )
    ).first()
    if existing is not None:
        return existing
    view = await settle_expired(conn, project_id, mode, view)
    if amount > view.available:
        raise InsufficientFunds(view.balance, view.available, amount)
    lots.check_spend_cap(view.spend_cap, view.spent, view.held, amount, view.period)
    now, reservation_id = now_ms(), str(uuid.uuid4())
    row = {
        "project_id": project_id,
        "mode": mode,
        "id": reservation_id,
        "user_id": user_id,
        "amount": amount,
        "status": "active",
        "idempotency_key": key,
        "fingerprint": print_,
        "description": description,
        "expires_at": now + ttl * 1000,
        "created_at": now,
    }
    await conn.execute(reservations.insert().values(**row))
    await _move(conn, project_id, mode, view, held=amount)
    return await get_reservation(conn, project_id, mode, reservation_id)


async def get_reservation(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, *, lock: bool = False
) -> Any:
    try:
        reservation_id = str(uuid.UUID(reservation_id))
    except ValueError:
        raise _fail("reservationId", "must be a UUID") from None
    stmt = select(reservations).where(
        reservations.c.project_id == project_id,
        reservations.c.mode == mode,
        reservations.c.id == reservation_id,
    )
    row = (await conn.execute(stmt.with_for_update() if lock else stmt)).first()
    if row is None:
        raise NotFoundError(f"reservationId: reservation not found: {reservation_id}", field="reservationId")
    return row


async def _locked_active(conn: AsyncConnection, project_id: str, mode: str, reservation_id: str) -> Any:
    """The reservation locked; an active one past its expiry is expired here, on the spot."""
    row = await get_reservation(conn, project_id, mode, reservation_id, lock=True)
    if row.status == "active" and row.expires_at <= now_ms():
        await _release(conn, project_id, mode, row, "expired")
        row = await get_reservation(conn, project_id, mode, reservation_id)
    return row


async def _release(conn: AsyncConnection, project_id: str, mode: str, row: Any, status: str) -> None:
    view = await lock_balance(conn, project_id, mode, row.user_id)
    await conn.execute(
        update(reservations)
        .where(
            reservations.c.project_id == project_id,
            reservations.c.mode == mode,
            reservations.c.id == row.id,
        )
        .values(status=status)
    )
    view = await _move(conn, project_id, mode, view, held=-row.amount)
    await settle_expired(conn, project_id, mode, view)  # credit the hold kept from expiring goes now
    if status == "expired":
        data = {
            "reservationId": row.id,
            "userId": row.user_id,
            "amount": format_amount(row.amount),
            "expiresAt": iso(row.expires_at),
        }
        await outbox.enqueue(conn, project_id, mode, "reservation.expired", data)


async def confirm_reservation(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, actual: Decimal
) -> tuple[Any, str, BalanceView]:
    row = await _locked_active(conn, project_id, mode, reservation_id)
    if row.status == "confirmed":
        if row.confirmed_amount == actual:  # a retried confirm: the same answer again
            return row, row.transaction_id, await read_balance(conn, project_id, mode, row.user_id)
        raise FailedPreconditionError(
            f"reservationId: reservation is already confirmed with {format_amount(row.confirmed_amount)}",
            field="reservationId",
        )
    if row.status != "active":
        raise FailedPreconditionError(f"reservationId: reservation is {row.status}", field="reservationId")
    if actual > row.amount:
        raise _fail("actualAmount", f"must not exceed the held amount {format_amount(row.amount)}")
    view = await settle_expired(
        conn, project_id, mode, await lock_balance(conn, project_id, mode, row.user_id)
    )
    transaction_id = str(uuid.uuid4())
    await conn.execute(
        ledger_entries.insert().values(
            project_id=project_id,
            mode=mode,
            id=transaction_id,
            user_id=row.user_id,
            kind="capture",
            amount=-actual,
            reservation_id=row.id,
            description=row.description,
            created_at=now_ms(),
        )
    )
    await conn.execute(
        update(reservations)
        .where(
            reservations.c.project_id == project_id,
            reservations.c.mode == mode,
            reservations.c.id == row.id,
        )
        .values(status="confirmed", confirmed_amount=actual, transaction_id=transaction_id)
    )
    await _consume(conn, project_id, mode, row.user_id, actual)
    view = await _move(conn, project_id, mode, view, balance=-actual, held=-row.amount, spend=actual)
    view = await settle_expired(conn, project_id, mode, view)
    return await get_reservation(conn, project_id, mode, row.id), transaction_id, view


async def cancel_reservation(conn: AsyncConnection, project_id: str, mode: str, reservation_id: str) -> Any:
    row = await _locked_active(conn, project_id, mode, reservation_id)
    if row.status == "active":
        await _release(conn, project_id, mode, row, "cancelled")
    elif row.status == "confirmed":
        raise FailedPreconditionError(
            "reservationId: reservation is already confirmed", field="reservationId"
        )
    return await get_reservation(conn, project_id, mode, row.id)  # cancelled or expired: nothing more to do


async def extend_reservation(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, ttl: int
) -> Any:
    row = await _locked_active(conn, project_id, mode, reservation_id)
    if row.status != "active":
        raise FailedPreconditionError(f"reservationId: reservation is {row.status}", field="reservationId")
    await conn.execute(
        update(reservations)
        .where(
            reservations.c.project_id == project_id,
            reservations.c.mode == mode,
            reservations.c.id == row.id,
        )
        .values(expires_at=now_ms() + ttl * 1000)
    )
    return await get_reservation(conn, project_id, mode, row.id)


async def expire_due(conn: AsyncConnection, limit: int = 500) -> int:
    """Release every active reservation past its expiry, in any project. Safe on many processes at once:
    rows another process is releasing are skipped, and each release is conditional on ``status='active'``."""
    stmt = (
        select(reservations)
        .where(reservations.c.status == "active", reservations.c.expires_at <= now_ms())
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    due = list(await conn.execute(stmt))
    for row in sorted(due, key=lambda r: (r.project_id, r.mode, r.user_id)):
        await _release(conn, row.project_id, row.mode, row, "expired")
    return len(due)


async def expire_due_lots(conn: AsyncConnection, limit: int = 500) -> int:
    """Expire credit that is due, in any project; returns how many lots were looked at. Safe on many
    processes at once: each user's balance row is taken with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (a
    user another transaction holds is left for the next sweep), lots change only under that lock and by
    conditional updates, so each expiry entry is written once."""
    now = now_ms()
    due = list(
        await conn.execute(
            select(credit_lots.c.project_id, credit_lots.c.mode, credit_lots.c.user_id)
            .where(credit_lots.c.due_at <= now)
            .order_by(credit_lots.c.due_at)
            .limit(limit)
        )
    )
    skip = conn.dialect.name == "postgresql"
    for project_id, mode, user_id in sorted({(r.project_id, r.mode, r.user_id) for r in due}):
        row = (await conn.execute(_locked_row(project_id, mode, user_id, skip_locked=skip))).first()
        if row is None:  # another process holds this user: it expires what is due, or the next sweep does
            continue
        await conn.execute(  # nothing left to expire (consumed meanwhile): stop looking at it
            update(credit_lots)
            .where(
                credit_lots.c.project_id == project_id,
                credit_lots.c.mode == mode,
                credit_lots.c.user_id == user_id,
                credit_lots.c.due_at <= now,
                credit_lots.c.remaining <= Decimal(0),
            )
            .values(due_at=None)
        )
        await settle_expired(conn, project_id, mode, _locked_view(user_id, row), due_by=now)
    return len(due)


# Spend controls -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSettings:
    user_id: str
    spend_cap: Decimal | None
    low_balance_threshold: Decimal | None
    period: int
    spent: Decimal
    held: Decimal

    @property
    def cap_remaining(self) -> Decimal | None:
        if self.spend_cap is None:
            return None
        return max(Decimal(0), self.spend_cap - self.spent - self.held)


def _settings(view: BalanceView) -> UserSettings:
    return UserSettings(
        view.user_id, view.spend_cap, view.low_balance_threshold, view.period, view.spent, view.held
    )


def check_setting(field: str, text: str | None, *, allow_negative: bool) -> Decimal | None:
    """A setting's new value: None = remove it; a decimal string in minor units otherwise."""
    if text is None or text == "":
        return None
    try:
        value = parse_decimal(text)
        to_micros(value)
    except MoneyError as e:
        raise _fail(field, str(e)) from None
    if value < 0 and not allow_negative:
        raise _fail(field, "must not be negative")
    return from_micros(to_micros(value))


_UNCHANGED: Any = object()


async def get_settings(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> UserSettings:
    row = (
        await conn.execute(
            select(
                balances.c.balance,
                balances.c.held,
                balances.c.spend_cap,
                balances.c.spend_period,
                balances.c.spent,
                balances.c.low_balance_threshold,
            ).where(
                balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id
            )
        )
    ).first()
    if row is None:
        return UserSettings(user_id, None, None, lots.period_of(now_ms()), Decimal(0), Decimal(0))
    return _settings(_locked_view(user_id, row))


async def update_settings(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    *,
    spend_cap: Decimal | None = _UNCHANGED,
    low_balance_threshold: Decimal | None = _UNCHANGED,
) -> UserSettings:
    """Set or remove (None) a user's spend cap and low-balance threshold; omitted ones stay. Neither is
    retroactive: a lower cap refuses the next debit, a higher threshold alerts at the next crossing."""
    view = await lock_balance(conn, project_id, mode, user_id)
    values: dict[str, Any] = {}
    if spend_cap is not _UNCHANGED:
        values["spend_cap"] = spend_cap
        view = replace(view, spend_cap=spend_cap)
    if low_balance_threshold is not _UNCHANGED:
        values["low_balance_threshold"] = low_balance_threshold
        view = replace(view, low_balance_threshold=low_balance_threshold)
    if values:
        await conn.execute(
            update(balances)
            .where(
                balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id
            )
            .values(**values, updated_at=now_ms())
        )
    return _settings(view)


# Listing ------------------------------------------------------------------------------------------------


def page_size(limit: int) -> int:
    if limit < 0 or limit > MAX_PAGE:
        raise _fail("limit", f"must be 0 (default {DEFAULT_PAGE}) to {MAX_PAGE}")
    return limit or DEFAULT_PAGE


def _cursor(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    created, _, ident = token.partition(":")
    if not created.isdigit() or not ident:
        raise _fail("pageToken", "is not a token this server gave out")
    return int(created), ident


async def list_reservations(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, active_only: bool, limit: int, token: str
) -> tuple[list[Any], str]:
    size = page_size(limit)
    stmt = select(reservations).where(reservations.c.project_id == project_id, reservations.c.mode == mode)
    if user_id:
        stmt = stmt.where(reservations.c.user_id == check_user(user_id))
    if active_only:
        stmt = stmt.where(reservations.c.status == "active", reservations.c.expires_at > now_ms())
    return await _page(conn, stmt, reservations, size, token)


async def list_transactions(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, limit: int, token: str
) -> tuple[list[Any], str]:
    size = page_size(limit)
    stmt = _entries().where(
        ledger_entries.c.project_id == project_id,
        ledger_entries.c.mode == mode,
        ledger_entries.c.user_id == check_user(user_id),
    )
    return await _page(conn, stmt, ledger_entries, size, token)


async def _page(conn: AsyncConnection, stmt: Any, table: Any, size: int, token: str) -> tuple[list[Any], str]:
    cursor = _cursor(token)
    if cursor is not None:
        stmt = stmt.where(
            or_(table.c.created_at < cursor[0], and_(table.c.created_at == cursor[0], table.c.id < cursor[1]))
        )
    rows = list(
        await conn.execute(stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(size + 1))
    )
    more = len(rows) > size
    rows = rows[:size]
    return rows, f"{rows[-1].created_at}:{rows[-1].id}" if more else ""
