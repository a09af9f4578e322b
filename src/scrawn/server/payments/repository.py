"""All SQL of the payments domain: payment configurations (secrets sealed), checkouts and the provider
webhook events stored once. Rows leave as the values of ``payments/types.py``; ``updated_at`` and
``received_at`` are stamped here."""

from __future__ import annotations

from dataclasses import asdict
from typing import TypedDict, Unpack

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.clock import now_ms
from scrawn.server.db.engine import dialect_insert
from scrawn.server.db.rows import project_deletes, typed
from scrawn.server.db.schema import checkouts, inbound_webhooks, payment_configs
from scrawn.server.payments.types import CheckoutRecord, InboundWebhookEvent, PaymentConfig

# Payment configurations ----------------------------------------------------------------------------------


def _config_key(project_id: str, mode: str) -> ColumnElement[bool]:
    return (payment_configs.c.project_id == project_id) & (payment_configs.c.mode == mode)


async def any_config(conn: AsyncConnection, project_id: str) -> bool:
    """Whether the project has a payment configuration (amounts in its currency)."""
    found = await conn.scalar(
        select(payment_configs.c.project_id).where(payment_configs.c.project_id == project_id).limit(1)
    )
    return found is not None


async def save_config(conn: AsyncConnection, sealed: PaymentConfig) -> None:
    """Create or replace the mode's configuration; its secrets already sealed."""
    row = {**asdict(sealed), "updated_at": now_ms()}
    insert = dialect_insert(conn, payment_configs).values(**row)
    changed = {k: insert.excluded[k] for k in row if k not in ("project_id", "mode")}
    await conn.execute(insert.on_conflict_do_update(index_elements=["project_id", "mode"], set_=changed))


async def load_config(conn: AsyncConnection, project_id: str, mode: str) -> PaymentConfig | None:
    """The mode's configuration, its secrets still sealed."""
    row = (await conn.execute(select(payment_configs).where(_config_key(project_id, mode)))).first()
    return None if row is None else typed(PaymentConfig, row)


async def delete_config(conn: AsyncConnection, project_id: str, mode: str) -> bool:
    """True when there was one."""
    result = await conn.execute(delete(payment_configs).where(_config_key(project_id, mode)))
    return bool(result.rowcount)


# Checkouts ------------------------------------------------------------------------------------------------


def _checkout_key(project_id: str, mode: str, checkout_id: str) -> ColumnElement[bool]:
    return (
        (checkouts.c.project_id == project_id) & (checkouts.c.mode == mode) & (checkouts.c.id == checkout_id)
    )


async def insert_checkout(conn: AsyncConnection, checkout: CheckoutRecord) -> None:
    """A new checkout; its ``updated_at`` is its ``created_at``."""
    await conn.execute(checkouts.insert().values(**{**asdict(checkout), "updated_at": checkout.created_at}))


async def get_checkout(
    conn: AsyncConnection, project_id: str, mode: str, checkout_id: str
) -> CheckoutRecord | None:
    row = (await conn.execute(select(checkouts).where(_checkout_key(project_id, mode, checkout_id)))).first()
    return None if row is None else typed(CheckoutRecord, row)


async def checkout_by_id(conn: AsyncConnection, checkout_id: str) -> CheckoutRecord | None:
    """A checkout by its id alone (random, so unique across projects)."""
    row = (await conn.execute(select(checkouts).where(checkouts.c.id == checkout_id))).first()
    return None if row is None else typed(CheckoutRecord, row)


async def checkout_by_payment(conn: AsyncConnection, provider: str, payment_id: str) -> CheckoutRecord | None:
    """The checkout a provider payment paid."""
    query = select(checkouts).where(
        checkouts.c.provider_payment_id == payment_id, checkouts.c.provider == provider
    )
    row = (await conn.execute(query)).first()
    return None if row is None else typed(CheckoutRecord, row)


async def checkouts_in(
    conn: AsyncConnection, project_id: str, mode: str, user_id: str, statuses: tuple[str, ...]
) -> list[CheckoutRecord]:
    """A user's checkouts whose status is one of ``statuses``."""
    query = select(checkouts).where(
        checkouts.c.project_id == project_id,
        checkouts.c.mode == mode,
        checkouts.c.user_id == user_id,
        checkouts.c.status.in_(statuses),
    )
    return [typed(CheckoutRecord, row) for row in await conn.execute(query)]


async def list_checkouts(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    user_id: str | None,
    limit: int,
    *,
    after: tuple[int, str] | None = None,
) -> list[CheckoutRecord]:
    """Checkouts of a project and mode, newest first by ``(created_at, id)`` (optionally one user's), and
    only those after the ``after`` row in that order (the dashboard's keyset pages)."""
    c = checkouts.c
    query = (
        select(checkouts)
        .where(c.project_id == project_id, c.mode == mode)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    )
    if user_id:
        query = query.where(c.user_id == user_id)
    if after is not None:
        at, checkout_id = after
        query = query.where(or_(c.created_at < at, and_(c.created_at == at, c.id < checkout_id)))
    return [typed(CheckoutRecord, row) for row in await conn.execute(query)]


class CheckoutChanges(TypedDict, total=False):
    """What changes in a checkout after it is created; a None one stays as it is."""

    status: str | None
    provider_session_id: str | None
    provider_url: str | None
    provider_payment_id: str | None
    paid_charge: int | None
    refunded_charge: int | None


async def update_checkout(
    conn: AsyncConnection,
    project_id: str,
    mode: str,
    checkout_id: str,
    *,
    expect: str | None = None,
    **changes: Unpack[CheckoutChanges],
) -> bool:
    """Change the given fields (a None one stays as it is), only while the status is ``expect`` if given;
    True if the checkout was changed."""
    values = {k: v for k, v in changes.items() if v is not None}
    stmt = update(checkouts).where(_checkout_key(project_id, mode, checkout_id))
    if expect is not None:
        stmt = stmt.where(checkouts.c.status == expect)
    return bool((await conn.execute(stmt.values(updated_at=now_ms(), **values))).rowcount)


# Inbound provider webhooks ----------------------------------------------------------------------------


async def record_inbound(conn: AsyncConnection, event: InboundWebhookEvent) -> bool:
    """Store a provider event; False when it was stored before (a replay, or a concurrent twin)."""
    stored = await conn.execute(
        dialect_insert(conn, inbound_webhooks)
        .values(**asdict(event), received_at=now_ms())
        .on_conflict_do_nothing()
        .returning(inbound_webhooks.c.event_id)
    )
    return stored.first() is not None


async def delete_project(conn: AsyncConnection, project_id: str) -> int:
    """Delete the project's payment rows (checkouts, provider webhooks, configurations)."""
    deletes = project_deletes(project_id, checkouts, inbound_webhooks, payment_configs)
    return sum([(await conn.execute(d)).rowcount for d in deletes])
