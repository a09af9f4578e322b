"""``scrawn projects``: a project's name, currency, amount unit and USD conversion rate (docs/usage.md)."""

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
    help="Projects: name, currency, amount unit and the USD rate for LLM prices.", no_args_is_help=True
)


def _rate(p: currency.ProjectMoney) -> str:
    if p.currency == currency.USD:
        return "1"
    return "not set" if p.usd_rate is None else format_amount(p.usd_rate)


@projects_app.command("list")
def projects_list(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Every project with its currency, amount unit and USD rate (its minor units per US cent)."""

    async def work(db: Database) -> list[currency.ProjectMoney]:
        async with db.read() as conn:
            return await currency.list_all(conn)

    table = Table("id", "name", "currency", "amount unit", "usd rate")
    for p in run_db(load_settings(database_url=database_url, data_dir=data_dir), work):
        table.add_row(p.id, p.name, p.currency, p.amount_unit, _rate(p))
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
            )

    p = run_db(load_settings(database_url=database_url, data_dir=data_dir), work)
    console.print(
        f"project {p.id} ({p.name}): currency {p.currency}, amount unit {p.amount_unit}, usd rate {_rate(p)}",
        highlight=False,
    )
    if p.currency != currency.USD and p.usd_rate is None:
        console.print(
            f"note: LLM usage priced by the USD model price book is refused until you "
            f"{currency.SET_RATE_HINT}; tag prices and explicit amounts are billed as given",
            highlight=False,
        )
