"""``scrawn projects``: a project's name, currency, amount unit and USD conversion rate (docs/usage.md),
registered on the ``scrawn`` command by cli.py."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.table import Table

from scrawn.money import format_amount
from scrawn.server.db.engine import Database
from scrawn.server.pricing import currency

projects_app = typer.Typer(
    help="Projects: name, currency, amount unit and the USD rate for LLM prices.", no_args_is_help=True
)

# The shared helpers live in scrawn.server.cli, which imports this module when it registers the commands
# (and may itself be running as __main__): register() hands it over instead of an import.
_cli: ModuleType | None = None

DbOpt = Annotated[str | None, typer.Option("--database-url", help="Database URL [env SCRAWN_DATABASE_URL]")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env SCRAWN_DATA_DIR]")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Project id (default: the only project)")]


def _rate(p: currency.ProjectMoney) -> str:
    if p.currency == currency.USD:
        return "1"
    return "not set" if p.usd_rate is None else format_amount(p.usd_rate)


@projects_app.command("list")
def projects_list(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Every project with its currency, amount unit and USD rate (its minor units per US cent)."""
    cli = _main()

    async def work(db: Database) -> list[currency.ProjectMoney]:
        async with db.read() as conn:
            return await currency.list_all(conn)

    table = Table("id", "name", "currency", "amount unit", "usd rate")
    for p in cli._run(cli._settings(database_url=database_url, data_dir=data_dir), work):
        table.add_row(p.id, p.name, p.currency, p.amount_unit, _rate(p))
    cli.console.print(table)


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
    cli = _main()

    async def work(db: Database) -> currency.ProjectMoney:
        async with db.write() as conn:
            project_id = await cli._project(conn, project)
            return await currency.update_project(
                conn,
                project_id,
                name=name,
                currency=currency_,
                usd_rate=usd_rate,
                amount_unit=amount_unit,
            )

    p = cli._run(cli._settings(database_url=database_url, data_dir=data_dir), work)
    cli.console.print(
        f"project {p.id} ({p.name}): currency {p.currency}, amount unit {p.amount_unit}, usd rate {_rate(p)}",
        highlight=False,
    )
    if p.currency != currency.USD and p.usd_rate is None:
        cli.console.print(
            f"note: LLM usage priced by the USD model price book is refused until you "
            f"{currency.SET_RATE_HINT}; tag prices and explicit amounts are billed as given",
            highlight=False,
        )


def register(app: Any, cli: ModuleType) -> None:
    global _cli
    _cli = cli
    app.add_typer(projects_app, name="projects")


def _main() -> ModuleType:
    assert _cli is not None, "register() first"
    return _cli
