"""All SQL on the ledger's tables: ``ledger_entries``, ``balances``, ``credit_lots`` and ``balance_alerts``
(docs/wallets.md#where-money-moves), one user or one row at a time; the batch path's SQL for many users at
once is in ``batch_repository.py``. Rows leave this module as the typed values of ``ledger/types.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import AlreadyExistsError
from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import owned, page_after, project_deletes, typed
from scrawn.server.db.schema import balance_alerts, balances, credit_lots, ledger_entries
from scrawn.server.ledger.rules import Lot, LotRaceError, consumption_order
from scrawn.server.ledger.types import ZERO, BalanceRow, Entry, LedgerEntry, Scope

CHUNK = 500  # users per IN (…) list


@contextmanager
def key_taken(what: str) -> Iterator[None]:
    """A unique idempotency key that raced in for another user (two balance rows, two locks): the loser's
    insert fails; it is answered as a used key and its transaction rolls back."""
    try:
        yield
    except IntegrityError:
        raise AlreadyExistsError(
            f"idempotencyKey: already used for a different {what}", field="idempotencyKey"
        ) from None


# Balance rows ---------------------------------------------------------------------------------------------

_ROW = (
    balances.c.user_id,
    balances.c.balance,
    balances.c.held,
    balances.c.spend_cap,
    balances.c.spend_period,
    balances.c.spent,
    balances.c.low_balance_threshold,
)


# Built once (their values bound per call): balance reads and locks are on every lookup, debit and
# reservation, and building and hashing a statement costs more than running it.
_WHERE_USER = and_(
    balances.c.project_id == bindparam("p"),
    balances.c.mode == bindparam("m"),
    balances.c.user_id == bindparam("u"),
)
_READ_BALANCE = select(*_ROW).where(_WHERE_USER)
_LOCK_BALANCE = {skip: _READ_BALANCE.with_for_update(skip_locked=skip) for skip in (False, True)}
_MOVE_BALANCE = update(balances).where(_WHERE_USER)


def _user(project_id: str, mode: str, user_id: str) -> dict[str, str]:
    return {"p": project_id, "m": mode, "u": user_id}


async def read_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> BalanceRow | None:
    row = (await conn.execute(_READ_BALANCE, _user(project_id, mode, user_id))).first()
    return None if row is None else typed(BalanceRow, row)


async def lock_balance(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, *, skip_locked: bool = False
) -> BalanceRow | None:
    """The balance row locked for the rest of the transaction (``FOR UPDATE``; SQLite's write transaction
    is the lock already); None when the user has none, or when ``skip_locked`` and another holds it."""
    row = (await conn.execute(_LOCK_BALANCE[skip_locked], _user(project_id, mode, user_id))).first()
    return None if row is None else typed(BalanceRow, row)


async def create_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str, now: int) -> None:
    """A zero balance row (a concurrent twin may create it first: then this does nothing)."""
    await conn.execute(
        dialect_insert(conn, balances)
        .values(project_id=project_id, mode=mode, user_id=user_id, balance=ZERO, held=ZERO, updated_at=now)
        .on_conflict_do_nothing()
    )


async def write_balance(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str,
    *,
    now: int,
    **values: Decimal | int | None,
) -> None:
    # A prebuilt UPDATE takes its SET columns from the parameters and would ignore a misspelt one.
    if unknown := values.keys() - balances.c.keys():
        raise ValueError(f"not balance columns: {sorted(unknown)}")
    await conn.execute(_MOVE_BALANCE, {**_user(project_id, mode, user_id), **values, "updated_at": now})


async def set_balance(conn: AsyncConnection, scope: Scope, balance: Decimal) -> None:
    await conn.execute(_MOVE_BALANCE, {**_user(*scope), "balance": balance})


# Ledger entries -------------------------------------------------------------------------------------------


def _entry_values(entry: LedgerEntry, entry_id: str, now: int) -> dict[str, Any]:
    return {
        "project_id": entry.project_id,
        "mode": entry.mode,
        "id": entry_id,
        "user_id": entry.user_id,
        "kind": entry.kind,
        "amount": entry.amount,
        "event_id": entry.event_id,
        "reservation_id": entry.reservation_id,
        "idempotency_key": entry.idempotency_key,
        "fingerprint": entry.fingerprint,
        "description": entry.description,
        "created_at": now,
    }


async def insert_entries(conn: AsyncConnection, entries: Sequence[tuple[LedgerEntry, str]], now: int) -> None:
    """(entry, id) rows in one statement."""
    if entries:
        await conn.execute(ledger_entries.insert(), [_entry_values(e, i, now) for e, i in entries])


async def insert_entry_once(conn: AsyncConnection, entry: LedgerEntry, entry_id: str, now: int) -> bool:
    """Insert unless its idempotency key is taken; False when it was."""
    stmt = (
        dialect_insert(conn, ledger_entries)
        .values(**_entry_values(entry, entry_id, now))
        .on_conflict_do_nothing()
        .returning(ledger_entries.c.id)
    )
    return (await conn.execute(stmt)).scalar() is not None


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


_ENTRY_BY_KEY = _entries().where(
    ledger_entries.c.project_id == bindparam("p"),
    ledger_entries.c.mode == bindparam("m"),
    ledger_entries.c.idempotency_key == bindparam("k"),
)  # built once: every keyed posting (credit, debit, reservation) looks its key up first


async def entry_by_key(conn: AsyncConnection, project_id: str, mode: str, key: str) -> Entry | None:
    row = (await conn.execute(_ENTRY_BY_KEY, {"p": project_id, "m": mode, "k": key})).first()
    return None if row is None else typed(Entry, row)


async def usage_entry_of(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, event_id: str
) -> Entry | None:
    """The ``usage`` entry that billed the user's event ``event_id``, if any (under the user's index)."""
    where = owned(ledger_entries, project_id, mode, user_id=user_id, event_id=event_id, kind="usage")
    row = (await conn.execute(_entries().where(*where))).first()
    return None if row is None else typed(Entry, row)


async def entries_page(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, size: int, cursor: tuple[int, str] | None
) -> list[Entry]:
    """Up to ``size + 1`` of a user's entries, newest first, after the (created_at, id) cursor."""
    stmt = _entries().where(
        ledger_entries.c.project_id == project_id,
        ledger_entries.c.mode == mode,
        ledger_entries.c.user_id == user_id,
    )
    rows = await conn.execute(page_after(stmt, ledger_entries, size, cursor))
    return [typed(Entry, r) for r in rows]


# Credit lots ----------------------------------------------------------------------------------------------


async def live_lots(
    conn: AsyncConnection, project_id: str, mode: str, user_ids: Sequence[str], *, due_by: int | None = None
) -> dict[str, list[Lot]]:
    """The users' lots with something left (only those expired by ``due_by`` when given), each user's in
    consumption order."""
    found: dict[str, list[Lot]] = {}
    users = sorted(set(user_ids))
    for start in range(0, len(users), CHUNK):
        stmt = select(credit_lots).where(
            credit_lots.c.project_id == project_id,
            credit_lots.c.mode == mode,
            credit_lots.c.user_id.in_(users[start : start + CHUNK]),
            credit_lots.c.remaining > ZERO,
        )
        if due_by is not None:
            stmt = stmt.where(credit_lots.c.expires_at <= due_by)
        for row in await conn.execute(stmt):
            found.setdefault(row.user_id, []).append(typed(Lot, row))
    for lots in found.values():
        lots.sort(key=consumption_order)
    return found


async def update_lot(conn: AsyncConnection, project_id: str, mode: str, lot: Lot, **values: Any) -> None:
    """Change a lot, on the condition that it is still as read (else roll back: ``LotRaceError``)."""
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


async def lots_of(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> list[Lot]:
    """Every lot of a user, soonest-expiring first (for the CLI and dashboards)."""
    rows = await conn.execute(
        select(credit_lots)
        .where(*owned(credit_lots, project_id, mode, user_id=user_id))
        .order_by(credit_lots.c.expires_at, credit_lots.c.id)
    )
    return [typed(Lot, r) for r in rows]


async def users_with_lots_due(conn: AsyncConnection, now: int, limit: int) -> tuple[int, list[Scope]]:
    """(lots looked at, their users in sorted order): up to ``limit`` lots due by ``now``, any project."""
    due = list(
        await conn.execute(
            select(credit_lots.c.project_id, credit_lots.c.mode, credit_lots.c.user_id)
            .where(credit_lots.c.due_at <= now)
            .order_by(credit_lots.c.due_at)
            .limit(limit)
        )
    )
    return len(due), sorted({(r.project_id, r.mode, r.user_id) for r in due})


async def forget_spent_lots(conn: AsyncConnection, scope: Scope, now: int) -> None:
    """Lots due with nothing left to expire (consumed meanwhile): sweepers stop looking at them."""
    project_id, mode, user_id = scope
    await conn.execute(
        update(credit_lots)
        .where(
            *owned(credit_lots, project_id, mode, user_id=user_id),
            credit_lots.c.due_at <= now,
            credit_lots.c.remaining <= ZERO,
        )
        .values(due_at=None)
    )


# Alerts ---------------------------------------------------------------------------------------------------


async def insert_alert(
    conn: AsyncConnection,
    scope: Scope,
    *,
    threshold: Decimal,
    balance: Decimal,
    available: Decimal,
    now: int,
) -> None:
    project_id, mode, user_id = scope
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


async def any_lot_due(conn: AsyncConnection, now: int) -> bool:
    return bool(await conn.scalar(select(exists().where(credit_lots.c.due_at <= now))))


# Read-only questions other domains ask of the ledger (the wallet CLI's listings, projects' money check,
# usage records' capture lookup).
async def any_ledger_entry(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project holds any ledger entry (amounts in its currency)."""
    found = await conn.scalar(
        select(ledger_entries.c.project_id).where(ledger_entries.c.project_id == project_id).limit(1)
    )
    return found is not None


async def list_balances(
    conn: AsyncConnection, project_id: str, mode: str, limit: int | None = None
) -> list[Row[tuple[object, ...]]]:
    """Every user's balance row in a mode, by user id (``scrawn users``, ``scrawn wallets``)."""
    query = (
        select(balances)
        .where(balances.c.project_id == project_id, balances.c.mode == mode)
        .order_by(balances.c.user_id)
    )
    return list(await conn.execute(query if limit is None else query.limit(limit)))


@dataclass(frozen=True)
class Capture:
    """A confirmed reservation's capture entry."""

    reservation_id: str | None


async def capture(
    conn: AsyncConnection, project_id: str, mode: str, transaction_id: str, user_id: str
) -> Capture | None:
    """The user's capture transaction ``transaction_id`` (a confirmed reservation), if there is one."""
    row = (
        await conn.execute(
            select(ledger_entries.c.reservation_id).where(
                ledger_entries.c.project_id == project_id,
                ledger_entries.c.mode == mode,
                ledger_entries.c.id == transaction_id,
                ledger_entries.c.user_id == user_id,
                ledger_entries.c.kind == "capture",
            )
        )
    ).first()
    return None if row is None else Capture(row.reservation_id)


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's ledger rows (entries, credit lots, balance alerts, balances)."""
    deletes = project_deletes(project_id, ledger_entries, credit_lots, balance_alerts, balances)
    return sum([(await conn.execute(d)).rowcount for d in deletes])


async def any_money_held(conn: AsyncConnection, project_id: str) -> bool:
    """Whether any user of the project has a non-zero balance or amount held."""
    found = await conn.scalar(
        select(balances.c.user_id)
        .where(balances.c.project_id == project_id, (balances.c.balance != ZERO) | (balances.c.held != ZERO))
        .limit(1)
    )
    return found is not None
