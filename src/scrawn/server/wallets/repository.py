"""All SQL on the ``reservations`` table (docs/wallets.md#reservations). The balances they hold are the
ledger's (``ledger/service.py``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.rows import owned, page_after, project_deletes, typed
from scrawn.server.db.schema import reservations


@dataclass(frozen=True)
class Reservation:
    project_id: str
    mode: str
    id: str
    user_id: str
    amount: Decimal  # held while active
    status: str  # active | confirmed | cancelled | expired
    idempotency_key: str
    fingerprint: str
    description: str | None
    expires_at: int  # Unix ms
    created_at: int
    confirmed_amount: Decimal | None = None
    transaction_id: str | None = None


def _first(row: Any) -> Reservation | None:
    return None if row is None else typed(Reservation, row)


async def by_key(conn: AsyncConnection, project_id: str, mode: str, key: str) -> Reservation | None:
    stmt = select(reservations).where(
        reservations.c.project_id == project_id,
        reservations.c.mode == mode,
        reservations.c.idempotency_key == key,
    )
    return _first((await conn.execute(stmt)).first())


async def by_id(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, *, lock: bool = False
) -> Reservation | None:
    stmt = select(reservations).where(
        reservations.c.project_id == project_id,
        reservations.c.mode == mode,
        reservations.c.id == reservation_id,
    )
    return _first((await conn.execute(stmt.with_for_update() if lock else stmt)).first())


async def insert(conn: AsyncConnection, reservation: Reservation) -> None:
    await conn.execute(reservations.insert().values(**asdict(reservation)))


async def update_one(
    conn: AsyncConnection, project_id: str, mode: str, reservation_id: str, **values: Any
) -> None:
    await conn.execute(
        update(reservations).where(*owned(reservations, project_id, mode, id=reservation_id)).values(**values)
    )


async def any_due(conn: AsyncConnection, now: int) -> bool:
    due = exists().where(reservations.c.status == "active", reservations.c.expires_at <= now)
    return bool(await conn.scalar(select(due)))


async def due(conn: AsyncConnection, now: int, limit: int) -> list[Reservation]:
    """Active reservations past their expiry, any project, oldest first; on PostgreSQL locked, skipping
    those another process holds."""
    stmt = (
        select(reservations)
        .where(reservations.c.status == "active", reservations.c.expires_at <= now)
        .order_by(reservations.c.expires_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [typed(Reservation, r) for r in await conn.execute(stmt)]


async def page(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    *,
    user_id: str | None,
    active_at: int | None,
    size: int,
    cursor: tuple[int, str] | None,
) -> list[Reservation]:
    """Up to ``size + 1`` reservations newest first (of one user; only active ones at ``active_at``)."""
    stmt = select(reservations).where(reservations.c.project_id == project_id, reservations.c.mode == mode)
    if user_id is not None:
        stmt = stmt.where(reservations.c.user_id == user_id)
    if active_at is not None:
        stmt = stmt.where(reservations.c.status == "active", reservations.c.expires_at > active_at)
    return [typed(Reservation, r) for r in await conn.execute(page_after(stmt, reservations, size, cursor))]


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's reservations; how many rows went (``scrawn projects delete``)."""
    deletes = project_deletes(project_id, reservations)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
