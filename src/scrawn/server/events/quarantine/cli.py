"""``scrawn events quarantine`` and ``scrawn events reprice``: the kept events (well-formed, not priceable
by the project's configuration when they arrived) and pricing them again (docs/pricing-safety.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from scrawn.money import format_amount
from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ModeOpt,
    ProjectOpt,
    check_mode,
    console,
    load_settings,
    project_of,
    run_db,
    ts,
)
from scrawn.server.db.engine import Database
from scrawn.server.events.quarantine import service as quarantine


def show(
    limit: Annotated[int, typer.Option(help="How many of the oldest waiting events to list", min=1)] = 50,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Kept events waiting to be repriced: counts by reason, then the oldest first."""
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(db: Database) -> None:
        async with db.read() as conn:
            project_id = await project_of(conn, project)
            found = await quarantine.waiting(conn, project_id, mode, limit=limit)
        console.print(f"waiting: {found.total}")
        for reason, count in found.by_reason.items():
            console.print(f"  {reason}: {count}")
        rows = found.events
        if not rows:
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("id", no_wrap=True, min_width=36)
        table.add_column("received", overflow="fold")
        table.add_column("user", overflow="fold")
        table.add_column("type", overflow="fold")
        table.add_column("field", overflow="fold")
        table.add_column("reason", overflow="fold")
        for r in rows:
            table.add_row(r.id, ts(r.received_at), r.user_id, r.event_type, r.field, r.reason)
        console.print(table)

    run_db(settings, work)


def reprice(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Ids of kept events (see `scrawn events quarantine`)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every waiting event of the project and mode")] = False,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Price kept events with today's configuration; the priced ones go onto the ledger exactly once."""
    if all_ == bool(ids):
        console.print("[red]error:[/red] give either --all or one or more event ids")
        raise typer.Exit(2)
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(db: Database) -> quarantine.RepriceResult:
        async with db.read() as conn:
            project_id = await project_of(conn, project)
        return await quarantine.reprice(db, project_id, mode, None if all_ else ids)

    done = run_db(settings, work)
    console.print(
        f"repriced {done.repriced}, still waiting {done.waiting}, billed {format_amount(done.amount)}"
    )
