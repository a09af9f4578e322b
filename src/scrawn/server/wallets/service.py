"""Prepaid wallets and reservations: the wallet rules over the ledger (DESIGN §5, docs/wallets.md).

Money moves only through ``ledger/service.py``, which keeps the invariants (available never below zero for
debits and holds, spend caps, credit lots, low-balance alerts); this module checks the inputs and keeps
the reservations (``wallets/repository.py``). Locks are taken reservation row first, then balance row, so
concurrent calls cannot deadlock; on PostgreSQL with ``SELECT … FOR UPDATE``, on SQLite by the single
``BEGIN IMMEDIATE`` writer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError, ValidationError
from scrawn.money import MAX_MICROS, MoneyError, format_amount, from_micros, parse_decimal, to_micros
from scrawn.server import paging
from scrawn.server.clock import iso
from scrawn.server.db.engine import now_ms
from scrawn.server.ledger import service as ledger
from scrawn.server.ledger.rules import fingerprint
from scrawn.server.ledger.types import SERVER_KEY_PREFIXES, Balance, Entry, LedgerEntry, Limits
from scrawn.server.paging import MAX_PAGE
from scrawn.server.wallets import repository as repo
from scrawn.server.wallets.repository import Reservation
from scrawn.server.webhooks import outbox

__all__ = ["MAX_PAGE", "fingerprint"]

CREDIT_KINDS = ("grant", "top_up", "adjustment")
DEFAULT_TTL, MAX_TTL = 300, 86_400
MAX_USER_ID, MAX_KEY, MAX_DESCRIPTION = 256, 255, 255
MAX_AMOUNT = from_micros(MAX_MICROS)  # the most a balance row's BIGINT micro-units hold

BalanceView = Balance  # the name callers (rpc, CLI) know it by
Posting = tuple[Entry, Balance, bool]


CONTEXT = "Wallet validation failed"


def _fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


def _check_text(field: str, value: str, limit: int, missing: str) -> str:
    """A required string: ``missing`` when empty or blank; at most ``limit`` characters, without NUL."""
    if not value or not value.strip():
        raise _fail(field, missing)
    if len(value) > limit or "\x00" in value:
        raise _fail(field, f"must be at most {limit} characters, without NUL")
    return value


def check_user(user_id: str) -> str:
    return _check_text("userId", user_id, MAX_USER_ID, "must be a non-empty string")


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
    key = _check_text("idempotencyKey", key, MAX_KEY, "is required so that a retry is never applied twice")
    if key.startswith(SERVER_KEY_PREFIXES):  # taking one would pre-empt, and so swallow, the server's entry
        raise _fail(
            "idempotencyKey", f"must not begin with {', '.join(SERVER_KEY_PREFIXES)} (the server's own)"
        )
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


lock_balance = ledger.lock
read_balance = ledger.read
settle_expired = ledger.settle_expired
expire_due_lots = ledger.expire_due_lots


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
) -> Posting:
    """``Credit`` (and ``scrawn wallets credit``): inputs already checked with the ``check_*`` functions."""
    entry = LedgerEntry(
        project_id,
        mode,
        user_id,
        kind,
        amount,
        idempotency_key=key,
        description=description,
        expires_at=expires_at,
    )
    return await _post(conn, entry, require_available=False)


async def debit(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str,
    amount: Decimal,
    key: str,
    description: str | None,
) -> Posting:
    """``Debit`` (and ``scrawn wallets debit``): atomic, refused past available or the spend cap."""
    entry = LedgerEntry(
        project_id, mode, user_id, "debit", -amount, idempotency_key=key, description=description
    )
    return await _post(conn, entry, require_available=True)


async def _post(conn: AsyncConnection, entry: LedgerEntry, *, require_available: bool) -> Posting:
    """One keyed ledger posting; a key already used for another transaction is refused by name."""
    with ledger.key_taken("transaction"):
        posted = await ledger.post_keyed(conn, entry, require_available=require_available)
    return posted.entry, posted.balance, posted.duplicate


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
) -> Reservation:
    print_ = fingerprint(user=user_id, amount=format_amount(amount), ttl=ttl, description=description)
    existing = await repo.by_key(conn, project_id, mode, key)
    if existing is not None:
        if existing.fingerprint != print_:
            raise AlreadyExistsError(
                "idempotencyKey: already used for a different reservation", field="idempotencyKey"
            )
        return existing
    with ledger.key_taken("reservation"):
        view = await ledger.lock(conn, project_id, mode, user_id)
        existing = await repo.by_key(
            conn, project_id, mode, key
        )  # re-read under the lock (a concurrent twin)
        if existing is not None:
            return existing
        view = await ledger.settle_expired(conn, project_id, mode, view)
        await ledger.hold(conn, project_id, mode, view, amount)
        now = now_ms()
        reservation = Reservation(
            project_id=project_id,
            mode=mode,
            id=str(uuid.uuid4()),
            user_id=user_id,
            amount=amount,
            status="active",
            idempotency_key=key,
            fingerprint=print_,
            description=description,
            expires_at=now + ttl * 1000,
            created_at=now,
        )
        await repo.insert(conn, reservation)
    return await get_reservation(conn, project_id, mode, reservation.id)


async def get_reservation(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, *, lock: bool = False
) -> Reservation:
    try:
        reservation_id = str(uuid.UUID(reservation_id))
    except ValueError:
        raise _fail("reservationId", "must be a UUID") from None
    row = await repo.by_id(conn, project_id, mode, reservation_id, lock=lock)
    if row is None:
        raise NotFoundError(f"reservationId: reservation not found: {reservation_id}", field="reservationId")
    return row


async def _locked_active(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str
) -> Reservation:
    """The reservation locked; an active one past its expiry is expired here, on the spot."""
    row = await get_reservation(conn, project_id, mode, reservation_id, lock=True)
    if row.status == "active" and row.expires_at <= now_ms():
        await _release(conn, project_id, mode, row, "expired")
        row = await get_reservation(conn, project_id, mode, reservation_id)
    return row


async def _release(conn: AsyncConnection, project_id: str, mode: str, row: Reservation, status: str) -> None:
    view = await ledger.lock(conn, project_id, mode, row.user_id)
    await repo.update_one(conn, project_id, mode, row.id, status=status)
    await ledger.release(conn, project_id, mode, view, row.amount)
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
) -> tuple[Reservation, str, Balance]:
    row = await _locked_active(conn, project_id, mode, reservation_id)
    if row.status == "confirmed":
        if row.confirmed_amount == actual:  # a retried confirm: the same answer again
            assert row.transaction_id is not None
            return row, row.transaction_id, await ledger.read(conn, project_id, mode, row.user_id)
        assert row.confirmed_amount is not None
        raise FailedPreconditionError(
            f"reservationId: reservation is already confirmed with {format_amount(row.confirmed_amount)}",
            field="reservationId",
        )
    if row.status != "active":
        raise FailedPreconditionError(f"reservationId: reservation is {row.status}", field="reservationId")
    if actual > row.amount:
        raise _fail("actualAmount", f"must not exceed the held amount {format_amount(row.amount)}")
    transaction_id, view = await ledger.capture(
        conn,
        project_id,
        mode,
        row.user_id,
        reservation_id=row.id,
        held=row.amount,
        actual=actual,
        description=row.description,
    )
    await repo.update_one(
        conn,
        project_id,
        mode,
        row.id,
        status="confirmed",
        confirmed_amount=actual,
        transaction_id=transaction_id,
    )
    return await get_reservation(conn, project_id, mode, row.id), transaction_id, view


async def cancel_reservation(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str
) -> Reservation:
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
) -> Reservation:
    row = await _locked_active(conn, project_id, mode, reservation_id)
    if row.status != "active":
        raise FailedPreconditionError(f"reservationId: reservation is {row.status}", field="reservationId")
    await repo.update_one(conn, project_id, mode, row.id, expires_at=now_ms() + ttl * 1000)
    return await get_reservation(conn, project_id, mode, row.id)


async def expire_due(conn: AsyncConnection, limit: int = 500) -> int:
    """Release every active reservation past its expiry, in any project. Safe on many processes at once:
    rows another process is releasing are skipped, and each release is conditional on ``status='active'``."""
    due = await repo.due(conn, now_ms(), limit)
    for row in sorted(due, key=lambda r: (r.project_id, r.mode, r.user_id)):
        await _release(conn, row.project_id, row.mode, row, "expired")
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


def _settings(view: Balance) -> UserSettings:
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


async def get_settings(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> UserSettings:
    return _settings(await ledger.read_limits(conn, project_id, mode, user_id))


async def update_settings(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    **limits: Unpack[Limits],
) -> UserSettings:
    """Set or remove (None) a user's spend cap and low-balance threshold; omitted ones stay. Neither is
    retroactive: a lower cap refuses the next debit, a higher threshold alerts at the next crossing."""
    return _settings(await ledger.set_limits(conn, project_id, mode, user_id, limits))


# Listing ------------------------------------------------------------------------------------------------


async def list_reservations(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, active_only: bool, limit: int, token: str
) -> tuple[list[Reservation], str]:
    size = paging.page_size(limit, context=CONTEXT)
    rows = await repo.page(
        conn,
        project_id,
        mode,
        user_id=check_user(user_id) if user_id else None,
        active_at=now_ms() if active_only else None,
        size=size,
        cursor=paging.cursor(token, context=CONTEXT),
    )
    return paging.next_page(rows, size, paging.created)


async def list_transactions(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, limit: int, token: str
) -> tuple[list[Entry], str]:
    size, cursor = paging.page_size(limit, context=CONTEXT), paging.cursor(token, context=CONTEXT)
    rows = await ledger.list_entries(conn, project_id, mode, check_user(user_id), size, cursor)
    return paging.next_page(rows, size, paging.created)
