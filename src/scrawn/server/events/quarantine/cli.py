"""``scrawn events quarantine`` and ``scrawn events reprice``: the kept events (well-formed, not priceable
by the project's configuration when they arrived) and pricing them again (docs/pricing-safety.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, options
from scrawn.server.cli_output import fields, say, table
from scrawn.server.cli_support import console, fail, pick, project_of
from scrawn.server.db.engine import Database
from scrawn.server.events.quarantine import repository
from scrawn.server.events.quarantine import service as quarantine


@options(mode=True, wide=True)
def show(
    cli: Cli,
    limit: Annotated[int, typer.Option(help="How many of the oldest waiting events to list", min=1)] = 50,
) -> None:
    """Kept events waiting to be repriced: counts by reason, then the oldest first."""
    found = cli.read(lambda conn, p: quarantine.waiting(conn, p, cli.mode, limit=limit))
    names = ("id", "received_at", "user_id", "event_type", "field", "reason_code", "reason")
    rows = [fields(r, *names) for r in found.events]
    if cli.json:
        say(cli, "", {"waiting": found.total, "by_reason": found.by_reason, "events": rows})
        return
    console.print(f"waiting: {found.total}")
    for reason, count in found.by_reason.items():
        console.print(f"  {reason}: {count}")
    if rows:
        table(cli, rows, extra=("event_type", "field", "reason_code"))


@options(mode=True)
def reprice(
    cli: Cli,
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="Ids (or unique prefixes) of kept events (see `scrawn events quarantine`)"),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every waiting event of the project and mode")] = False,
) -> None:
    """Price kept events with today's configuration; the priced ones go onto the ledger exactly once."""
    if all_ == bool(ids):
        fail("give either --all or one or more event ids", 2)

    async def work(db: Database) -> quarantine.RepriceResult:
        async with db.read() as conn:
            project_id = await project_of(conn, cli.project)
            wanted = None
            if ids:  # a unique prefix of a waiting event's id names it
                found = [await repository.waiting_ids_matching(conn, project_id, cli.mode, i) for i in ids]
                wanted = [pick("kept event", i, m) for i, m in zip(ids, found, strict=True)]
        return await quarantine.reprice(db, project_id, cli.mode, wanted)

    done = cli.run(work)
    say(
        cli,
        f"repriced {done.repriced}, still waiting {done.waiting}, billed {format_amount(done.amount)}",
        {"repriced": done.repriced, "waiting": done.waiting, "amount": done.amount},
    )
