"""``scrawn projects``: a project's name, currency, amount unit, USD conversion rate (docs/usage.md) and
late-event window (docs/events.md#late-events)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from scrawn.money import format_amount
from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ProjectOpt,
    console,
    load_settings,
    project_of,
    run_db,
)
from scrawn.server.db.engine import Database
from scrawn.server.pricing import currency

projects_app = typer.Typer(
    help="Projects: name, currency, amount unit, the USD rate for LLM prices, the late-event window.",
    no_args_is_help=True,
)


def _rate(p: currency.ProjectMoney) -> str:
    if p.currency == currency.USD:
        return "1"
    return "not set" if p.usd_rate is None else format_amount(p.usd_rate)


@projects_app.command("list")
def projects_list(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Every project with its currency, amount unit, USD rate (its minor units per US cent) and late-event
    window (events reported longer ago than that are refused)."""

    async def work(db: Database) -> list[currency.ProjectMoney]:
        async with db.read() as conn:
            return await currency.list_all(conn)

    table = Table("id", "name", "currency", "amount unit", "usd rate", "late window")
    for p in run_db(load_settings(database_url=database_url, data_dir=data_dir), work):
        table.add_row(p.id, p.name, p.currency, p.amount_unit, _rate(p), f"{p.late_window_days} days")
    console.print(table)


@projects_app.command("set")
def projects_set(
    name: Annotated[str | None, typer.Option(help="A new name")] = None,
    currency_: Annotated[
        str | None,
        typer.Option("--currency", help="ISO 4217 code; only before the project holds any money"),
    ] = None,
    usd_rate: Annotated[
        str | None,
        typer.Option(help="The currency's minor units per US cent (EUR: 0.92), a decimal string"),
    ] = None,
    amount_unit: Annotated[
        str | None, typer.Option(help="minor (amounts are cents) or major (whole units)")
    ] = None,
    late_window: Annotated[
        int | None,
        typer.Option(
            "--late-window",
            help="Refuse events reported more than N days ago (1 to 3650; default 35)",
            metavar="N",
        ),
    ] = None,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Change a project's settings (none given: show them). A new rate prices later usage only."""

    async def work(db: Database) -> currency.ProjectMoney:
        async with db.write() as conn:
            project_id = await project_of(conn, project)
            return await currency.update_project(
                conn,
                project_id,
                name=name,
                currency=currency_,
                usd_rate=usd_rate,
                amount_unit=amount_unit,
                late_window=late_window,
            )

    p = run_db(load_settings(database_url=database_url, data_dir=data_dir), work)
    console.print(
        f"project {p.id} ({p.name}): currency {p.currency}, amount unit {p.amount_unit}, "
        f"usd rate {_rate(p)}, late window {p.late_window_days} days",
        highlight=False,
    )
    if p.currency != currency.USD and p.usd_rate is None:
        console.print(
            f"note: LLM usage priced by the USD model price book is refused until you "
            f"{currency.SET_RATE_HINT}; tag prices and explicit amounts are billed as given",
            highlight=False,
        )
