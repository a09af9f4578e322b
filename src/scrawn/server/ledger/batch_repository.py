"""The ledger's SQL for many users at once: the batch path of usage ingest (balances moved by one multi-row
upsert, usage entries inserted in one statement, the users with live credit lots asked for first) and the
CTEs with which the events' one-statement flush posts usage on PostgreSQL. Amounts in micro-units."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import MAX_MICROS, to_micros
from scrawn.server.db import bulk
from scrawn.server.db.schema import balances, ledger_entries
from scrawn.server.ledger.types import BalanceRow, Moved, Scope


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


async def with_live_lots(
    conn: AsyncConnection, project_id: str, mode: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of the users have a lot with something left (the batch path asks first: usually none)."""
    users = _users(conn, sorted(set(user_ids)))
    rows: Any = await conn.exec_driver_sql(_WITH_LOTS[conn.dialect.name], (project_id, mode, users))
    return {r[0] for r in rows}


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


_USAGE_COLUMNS = ("project_id", "mode", "id", "user_id", "kind", "amount", "event_id", "created_at")


UsageRow = tuple[str, str, str, str, str, int, str | None, int]


async def insert_usage(conn: AsyncConnection, rows: Sequence[UsageRow]) -> None:
    """Usage entries as (project_id, mode, id, user_id, "usage", amount in micro-units, event_id,
    created_at) rows, in one statement."""
    await bulk.insert(conn, ledger_entries, _USAGE_COLUMNS, rows)


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
