"""``scrawn projects``: a project's name, currency, amount unit, USD conversion rate (docs/usage.md),
late-event window (docs/events.md#late-events) and time zone; ``scrawn keys`` (API keys), ``scrawn init``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ProjectOpt,
    console,
    in_project,
    load_settings,
    project_of,
    run_db,
    ts,
)
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import ROLES, KeyService
from scrawn.server.pricing import currency
from scrawn.server.projects import service
from scrawn.server.projects.types import ProjectMoney

projects_app = typer.Typer(
    help="Projects: name, currency, amount unit, the USD rate for LLM prices, the late-event window, the "
    "time zone.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


def _rate(p: ProjectMoney) -> str:
    if p.currency == currency.USD:
        return "1"
    return "not set" if p.usd_rate is None else format_amount(p.usd_rate)


@projects_app.command("list")
def projects_list(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Every project with its currency, amount unit, USD rate (its minor units per US cent) and late-event
    window (events reported longer ago than that are refused)."""

    async def work(db: Database) -> list[ProjectMoney]:
        async with db.read() as conn:
            return await service.list_all(conn)

    table = Table("id", "name", "currency", "amount unit", "usd rate", "late window", "time zone")
    for p in run_db(load_settings(database_url=database_url, data_dir=data_dir), work):
        table.add_row(
            p.id, p.name, p.currency, p.amount_unit, _rate(p), f"{p.late_window_days} days", p.time_zone
        )
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
    time_zone: Annotated[
        str | None,
        typer.Option(help="IANA time zone the dashboard's and portal's charts use (default UTC)"),
    ] = None,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Change a project's settings (none given: show them). A new rate prices later usage only."""

    async def work(conn: AsyncConnection, project_id: str) -> ProjectMoney:
        return await service.update_project(
            conn,
            project_id,
            name=name,
            currency=currency_,
            usd_rate=usd_rate,
            amount_unit=amount_unit,
            late_window=late_window,
            time_zone=time_zone,
        )

    p = in_project(load_settings(database_url=database_url, data_dir=data_dir), project, work, write=True)
    console.print(
        f"project {p.id} ({p.name}): currency {p.currency}, amount unit {p.amount_unit}, "
        f"usd rate {_rate(p)}, late window {p.late_window_days} days, time zone {p.time_zone}",
        highlight=False,
    )
    if p.currency != currency.USD and p.usd_rate is None:
        console.print(
            f"note: LLM usage priced by the USD model price book is refused until you "
            f"{currency.SET_RATE_HINT}; tag prices and explicit amounts are billed as given",
            highlight=False,
        )


def print_new_key(project_id: str, key: str) -> None:
    console.print(f"Project [bold]{project_id}[/bold] created.")
    console.print("Dashboard API key (shown once; store it now):")
    console.print(f"  [bold green]{key}[/bold green]")


def init(
    name: Annotated[str, typer.Option(help="Project name")] = "default",
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Create the schema if needed, a project, and its first dashboard key (printed once)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    created = run_db(
        settings, lambda db: service.bootstrap(db, settings, name, only_if_empty=False), create=True
    )
    assert created is not None
    print_new_key(*created)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name for the key")],
    role: Annotated[str, typer.Option(help="dash, live or test")] = "live",
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires")] = None,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    if role not in ROLES:
        console.print("[red]error:[/red] --role must be dash, live or test")
        raise typer.Exit(2)
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> str:
        async with db.write() as conn:
            project_id = await project_of(conn, project)
            record, key = await KeyService(db, settings.resolved_secret()).create_key(
                conn,
                project_id,
                role,
                name,
                expires_in,
            )
        return f"{record.id}\n{key}"

    key_id, key = run_db(settings, work).split("\n")
    console.print(f"key id {key_id}\n[bold green]{key}[/bold green]  (shown once)")


@keys_app.command("list")
def keys_list(project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """List keys (never their secret part)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    table = Table("id", "name", "role", "key", "created", "expires", "status")
    for k in in_project(settings, project, KeyService.list_keys):
        status = "revoked" if k.revoked_at else "active"
        table.add_row(k.id, k.name, k.role, k.display, ts(k.created_at), ts(k.expires_at), status)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Revoke a key: refused everywhere within a second."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    in_project(settings, project, lambda conn, p: KeyService.revoke_key(conn, p, key_id), write=True)
    console.print(f"revoked {key_id}")
