"""Deleting a project (``scrawn projects delete``): every row of it, domain by domain, each through its own
repository, in one transaction. Refused while the project has money on its ledger (any ledger entry or a
non-zero balance) unless forced: those rows are the record of what was billed and paid."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import FailedPreconditionError
from scrawn.server.events import repository as events
from scrawn.server.events import rollup_repository as rollup
from scrawn.server.events.quarantine import repository as quarantine
from scrawn.server.keys import repository as keys
from scrawn.server.ledger import repository as ledger
from scrawn.server.payments import repository as payments
from scrawn.server.pricing import repository as pricing
from scrawn.server.projects import repository, service
from scrawn.server.usage import repository as usage
from scrawn.server.wallets import repository as wallets
from scrawn.server.webhooks import repository as webhooks

# What goes, in this order (the project's own row last), and how a count of it is named.
DOMAINS: tuple[tuple[str, Callable[[AsyncConnection, str], Awaitable[int]]], ...] = (
    ("webhooks", webhooks.delete_project),
    ("payments", payments.delete_project),
    ("usage_records", usage.delete_project),
    ("reservations", wallets.delete_project),
    ("ledger", ledger.delete_project),
    ("quarantined_events", quarantine.delete_project),
    ("events", events.delete_project),
    ("usage_rollup", rollup.delete_project),
    ("pricing", pricing.delete_project),
    ("keys", keys.delete_project),
)


async def delete_project(conn: AsyncConnection, project_id: str, *, force: bool) -> dict[str, int]:
    """Delete the project and everything it holds (in the caller's write transaction); rows deleted by
    domain. Without ``force``, refused while its ledger holds money."""
    await service.load(conn, project_id)  # not found: a clear error
    await repository.lock(conn, project_id)
    if not force and (
        await ledger.any_ledger_entry(conn, project_id) or await ledger.any_money_held(conn, project_id)
    ):
        raise FailedPreconditionError(
            f"project {project_id} has money on its ledger (entries or balances); "
            "pass --force to delete it with everything it holds"
        )
    removed = {name: await remove(conn, project_id) for name, remove in DOMAINS}
    removed["project"] = await repository.delete_project(conn, project_id)
    return removed
