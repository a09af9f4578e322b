"""All SQL on the ledger's tables: ``ledger_entries``, ``balances``, ``credit_lots`` and ``balance_alerts``
(docs/wallets.md#where-money-moves). Rows leave this module as the typed values of ``ledger/types.py``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import AlreadyExistsError
from scrawn.money import MAX_MICROS, to_micros
from scrawn.server.db import bulk
from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import owned, page_after, project_deletes, typed
from scrawn.server.db.schema import balance_alerts, balances, credit_lots, ledger_entries
from scrawn.server.ledger.rules import Lot, LotRaceError, consumption_order
from scrawn.server.ledger.types import ZERO, BalanceRow, Entry, LedgerEntry, Moved, Scope

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


def _where_user(project_id: str, mode: str, user_id: str) -> Any:
    return and_(balances.c.project_id == project_id, balances.c.mode == mode, balances.c.user_id == user_id)


async def read_balance(conn: AsyncConnection, project_id: str, mode: str, user_id: str) -> BalanceRow | None:
    row = (await conn.execute(select(*_ROW).where(_where_user(project_id, mode, user_id)))).first()
    return None if row is None else typed(BalanceRow, row)


async def lock_balance(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, *, skip_locked: bool = False
) -> BalanceRow | None:
    """The balance row locked for the rest of the transaction (``FOR UPDATE``; SQLite's write transaction
    is the lock already); None when the user has none, or when ``skip_locked`` and another holds it."""
    stmt = (
        select(*_ROW).where(_where_user(project_id, mode, user_id)).with_for_update(skip_locked=skip_locked)
    )
    row = (await conn.execute(stmt)).first()
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
    await conn.execute(
        update(balances).where(_where_user(project_id, mode, user_id)).values(**values, updated_at=now)
    )


async def set_balance(conn: AsyncConnection, scope: Scope, balance: Decimal) -> None:
    await conn.execute(update(balances).where(_where_user(*scope)).values(balance=balance))


def _users(conn: AsyncConnection, users: list[str]) -> Any:
    """The users as one parameter (``user_id = ANY($3)`` on PostgreSQL, ``IN (SELECT value FROM
    json_each(?))`` on SQLite): no IN list of a thousand parameters to expand and bind."""
    return users if conn.dialect.name == "postgresql" else json.dumps(users)


_NEAR_RANGE = {
    "postgresql": "SELECT user_id, balance FROM balances WHERE project_id = $1 AND mode = $2 "
    "AND user_id = ANY($3::text[]) AND (balance > $4::bigint OR balance < -$5::bigint)",
    "sqlite": "SELECT user_id, balance FROM balances WHERE project_id = ? AND mode = ? "
    "AND user_id IN (SELECT value FROM json_each(?)) AND (balance > ? OR balance < -?)",
}
_WITH_LOTS = {
    "postgresql": "SELECT DISTINCT user_id FROM credit_lots WHERE project_id = $1 AND mode = $2 "
    "AND user_id = ANY($3::text[]) AND remaining > 0",
    "sqlite": "SELECT DISTINCT user_id FROM credit_lots WHERE project_id = ? AND mode = ? "
    "AND user_id IN (SELECT value FROM json_each(?)) AND remaining > 0",
}


async def balances_micros(
    conn: AsyncConnection, project_id: str, mode: str, user_ids: Sequence[str], *, beyond: int = -1
) -> dict[str, int]:
    """The users' balances in micro-units (no row: absent), only those whose magnitude passes ``beyond``
    (the batch path asks only for balances near the storable range: almost always none). One statement,
    the users as one array parameter (a JSON array on SQLite)."""
    users = _users(conn, sorted(set(user_ids)))
    sql = _NEAR_RANGE[conn.dialect.name]
    rows: Any = await conn.exec_driver_sql(sql, (project_id, mode, users, beyond, beyond))
    return {r[0]: int(r[1]) for r in rows}


# A moved balance row as RETURNING gives it: micro-units, in this order.
_MOVED = "project_id, mode, user_id, balance, held, spend_cap, spend_period, spent, low_balance_threshold"
_MAX = str(MAX_MICROS)
# ``spent`` plus this batch's spend in the same month (else the batch's spend alone), saturating at the
# BIGINT maximum instead of overflowing (a float on SQLite, a failed flush on PostgreSQL): it only counts
# towards a spend cap, which is at most that. CASE tests in order, so nothing overflows.
_MOVE = (
    "ON CONFLICT (project_id, mode, user_id) DO UPDATE SET balance = balances.balance + excluded.balance, "
    "updated_at = excluded.updated_at, spent = CASE WHEN balances.spend_period = excluded.spend_period THEN "
    "CASE WHEN excluded.spent <= 0 THEN balances.spent + excluded.spent "
    f"WHEN balances.spent > {_MAX} - excluded.spent THEN {_MAX} "
    "ELSE balances.spent + excluded.spent END ELSE excluded.spent END, "
    "spend_period = excluded.spend_period"
)
_MOVE_COLUMNS = ("project_id", "mode", "user_id", "balance", "held", "updated_at", "spent", "spend_period")


async def move_balances(
    conn: AsyncConnection, deltas: Sequence[tuple[Scope, int, int]], now: int, period: int
) -> dict[Scope, Moved]:
    """Move (creating if missing) the balance rows by (scope, delta, spend) micro-units in one multi-row
    upsert whose rows are in the given order (the order PostgreSQL locks them in). Returns the rows after
    it, in micro-units."""
    rows = [(*scope, delta, 0, now, spend, period) for scope, delta, spend in deltas]
    returned = await bulk.insert(conn, balances, _MOVE_COLUMNS, rows, tail=_MOVE, returning=_MOVED)
    return {(r[0], r[1], r[2]): Moved(*r[2:]) for r in returned}


def post_usage_ctes(source: str, now: str, period: str) -> str:
    """PostgreSQL CTEs that post usage for the events in the CTE ``source`` (columns project_id, mode, id,
    user_id, debit, ingested_at; debits in micro-units), for a statement that stores events and their money
    at once: ``usage_entries`` (one entry each, ids drawn by the database), ``moved`` (one balance move per
    user, in the order Python sorts them: the order every writer locks users in) and ``flagged``: the
    moved rows the rules still look at (a low-balance threshold, or live credit lots), as a JSON array of
    ``Moved`` rows with their scope. ``now`` and ``period`` are the statement's parameters ($n)."""
    # Names from the schema; ``source`` and the parameters from the caller's code.
    return (
        f"usage_entries AS (INSERT INTO ledger_entries ({', '.join(_USAGE_COLUMNS)}) "  # noqa: S608
        "SELECT project_id, mode, gen_random_uuid()::text, user_id, 'usage', -debit, id, ingested_at "
        f"FROM {source}), "
        f"moved AS (INSERT INTO balances ({', '.join(_MOVE_COLUMNS)}) "
        f"SELECT project_id, mode, user_id, (-sum(debit))::bigint, 0, {now}::bigint, sum(debit)::bigint, "
        f"{period}::integer FROM {source} GROUP BY project_id, mode, user_id "
        'ORDER BY project_id COLLATE "C", mode COLLATE "C", user_id COLLATE "C" '
        f"{_MOVE} RETURNING {_MOVED}), "
        f"flagged AS (SELECT json_agg(json_build_array({_MOVED})) AS rows FROM moved b WHERE {_NEEDS_RULES})"
    )


def flagged_rows(text: str | None) -> dict[Scope, Moved]:
    """The ``flagged`` CTE's rows by scope, from their JSON text (JSON numbers are exact integers in Python;
    as text, whatever JSON codec the driver has)."""
    return {(r[0], r[1], r[2]): Moved(*r[2:]) for r in json.loads(text)} if text else {}


# A moved row ``b`` the ledger's rules still look at after a usage debit: a low-balance threshold to check,
# or credit lots to expire and consume. Most users have neither.
_NEEDS_RULES = (
    "b.low_balance_threshold IS NOT NULL OR EXISTS (SELECT 1 FROM credit_lots c WHERE c.project_id = "
    "b.project_id AND c.mode = b.mode AND c.user_id = b.user_id AND c.remaining > 0)"
)
_WHERE_USERS = "project_id = {0} AND mode = {1} AND user_id {2}"
_FLAGGED = f"SELECT {_MOVED} FROM balances b WHERE {_WHERE_USERS} AND ({_NEEDS_RULES})"  # noqa: S608 - schema
_FLAGGED_SQL = {
    "postgresql": _FLAGGED.format("$1", "$2", "= ANY($3::text[])"),
    "sqlite": _FLAGGED.format("?", "?", "IN (SELECT value FROM json_each(?))"),
}


async def move_balances_quietly(
    conn: AsyncConnection, deltas: Sequence[tuple[Scope, int, int]], now: int, period: int
) -> dict[Scope, Moved]:
    """``move_balances``, returning only the rows the rules still look at (a low-balance threshold, live
    credit lots), read after the upsert: most users have neither, and rows returned cost more than the
    database's look-ups."""
    rows = [(*scope, delta, 0, now, spend, period) for scope, delta, spend in deltas]
    await bulk.insert(conn, balances, _MOVE_COLUMNS, rows, tail=_MOVE)
    by_scope: dict[tuple[str, str], list[str]] = {}
    for (project_id, mode, user_id), _, _ in deltas:
        by_scope.setdefault((project_id, mode), []).append(user_id)
    found: dict[Scope, Moved] = {}
    for (project_id, mode), users in by_scope.items():
        params = (project_id, mode, _users(conn, users))
        rows_back: Any = await conn.exec_driver_sql(_FLAGGED_SQL[conn.dialect.name], params)
        for r in rows_back:
            found[(r[0], r[1], r[2])] = Moved(*r[2:])
    return found


async def add_to_balances(
    conn: AsyncConnection,
    deltas: Sequence[tuple[Scope, Decimal, Decimal]],
    now: int,
    period: int,
) -> dict[Scope, BalanceRow]:
    """``move_balances`` in minor units."""
    moved = await move_balances(conn, [(s, to_micros(d), to_micros(p)) for s, d, p in deltas], now, period)
    return {scope: row.in_units() for scope, row in moved.items()}


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


_USAGE_COLUMNS = ("project_id", "mode", "id", "user_id", "kind", "amount", "event_id", "created_at")


UsageRow = tuple[str, str, str, str, str, int, str | None, int]


async def insert_usage(conn: AsyncConnection, rows: Sequence[UsageRow]) -> None:
    """Usage entries as (project_id, mode, id, user_id, "usage", amount in micro-units, event_id,
    created_at) rows, in one statement."""
    await bulk.insert(conn, ledger_entries, _USAGE_COLUMNS, rows)


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


async def entry_by_key(conn: AsyncConnection, project_id: str, mode: str, key: str) -> Entry | None:
    row = (
        await conn.execute(
            _entries().where(
                ledger_entries.c.project_id == project_id,
                ledger_entries.c.mode == mode,
                ledger_entries.c.idempotency_key == key,
            )
        )
    ).first()
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


async def with_live_lots(
    conn: AsyncConnection, project_id: str, mode: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of the users have a lot with something left (the batch path asks first: usually none)."""
    users = _users(conn, sorted(set(user_ids)))
    rows: Any = await conn.exec_driver_sql(_WITH_LOTS[conn.dialect.name], (project_id, mode, users))
    return {r[0] for r in rows}


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
