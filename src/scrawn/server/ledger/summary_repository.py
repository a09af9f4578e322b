"""Read-only summaries of the ledger's tables for the dashboard (pages of balances, top spenders, what is
owed, amounts over time). Part of the ledger's repository, kept apart so each module stays small."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.rows import typed
from scrawn.server.db.schema import PAYMENTS_ONLY, balances, ledger_entries
from scrawn.server.db.sums import joined, split_sum
from scrawn.server.ledger.repository import _ROW
from scrawn.server.ledger.types import ZERO, BalanceRow


async def balances_page(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    after: str | None,
    size: int,
    prefix: str | None = None,
) -> list[BalanceRow]:
    """Up to ``size + 1`` balance rows by user id after ``after`` (keyset; the dashboard's customers), only
    user ids starting with ``prefix`` when given."""
    stmt = select(*_ROW).where(balances.c.project_id == project_id, balances.c.mode == mode)
    if after is not None:
        stmt = stmt.where(balances.c.user_id > after)
    if prefix:
        stmt = stmt.where(balances.c.user_id.startswith(prefix, autoescape=True))
    rows = await conn.execute(stmt.order_by(balances.c.user_id).limit(size + 1))
    return [typed(BalanceRow, r) for r in rows]


async def top_spenders(
    conn: AsyncConnection, project_id: str, mode: str, period: int, limit: int
) -> list[BalanceRow]:
    """The users who spent most in the month ``period`` (yyyymm), most first."""
    stmt = (
        select(*_ROW)
        .where(
            balances.c.project_id == project_id,
            balances.c.mode == mode,
            balances.c.spend_period == period,
            balances.c.spent > ZERO,
        )
        .order_by(balances.c.spent.desc(), balances.c.user_id)
        .limit(limit)
    )
    return [typed(BalanceRow, r) for r in await conn.execute(stmt)]


async def outstanding_micros(conn: AsyncConnection, project_id: str, mode: str) -> tuple[int, int]:
    """How much users owe (the sum of negative balances, as positive micro-units) and how many owe it."""
    row = (
        await conn.execute(
            select(*split_sum(balances.c.balance, "owed"), func.count().label("n")).where(
                balances.c.project_id == project_id, balances.c.mode == mode, balances.c.balance < ZERO
            )
        )
    ).one()
    return -(joined(row, "owed") or 0), int(row.n)


async def amounts_by_bucket(
    conn: AsyncConnection, project_id: str, mode: str, kinds: Sequence[str], since: int, width_ms: int
) -> dict[int, int]:
    """Bucket start (Unix ms: ``since`` plus a multiple of ``width_ms``) → the exact sum in micro-units of
    the entries of ``kinds`` created since ``since`` (the dashboard's payments over time)."""
    width = literal_column(str(int(width_ms)), BigInteger)  # inlined: PostgreSQL groups by the same text
    origin = literal_column(str(int(since)), BigInteger)
    start = ledger_entries.c.created_at - (ledger_entries.c.created_at - origin) % width
    # Payments alone: the partial index's own condition, word for word, so both databases use it.
    kind = text(PAYMENTS_ONLY) if tuple(kinds) == ("payment",) else ledger_entries.c.kind.in_(list(kinds))
    stmt = (
        select(start.label("start"), *split_sum(ledger_entries.c.amount, "amount"))
        .where(
            ledger_entries.c.project_id == project_id,
            ledger_entries.c.mode == mode,
            kind,
            ledger_entries.c.created_at >= since,
        )
        .group_by(start)
    )
    return {int(r.start): joined(r, "amount") or 0 for r in await conn.execute(stmt)}
