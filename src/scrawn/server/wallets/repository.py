"""Read-only SQL on balances and the ledger for the wallet CLI and other domains' questions. Money moves
only through ``wallets.service`` (and the ledger it posts to), never here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.schema import balances, ledger_entries


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
