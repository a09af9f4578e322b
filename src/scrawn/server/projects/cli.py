"""``scrawn projects``: a project's name, currency, amount unit, USD conversion rate (docs/usage.md),
late-event window (docs/events.md#late-events) and time zone, renaming and deleting one; ``scrawn keys``
(API keys) and ``scrawn init``."""

from __future__ import annotations

from typing import Annotated, Any, cast

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, choice, duration, id_argument, options
from scrawn.server.cli_output import fields, say, table
from scrawn.server.cli_support import console, pick, project_of
from scrawn.server.db.engine import Database, now_ms
from scrawn.server.keys import repository as keys
from scrawn.server.keys.rpc import MAX_EXPIRY, MIN_EXPIRY
from scrawn.server.keys.service import ROLES, KeyService
from scrawn.server.keys.types import KeyRecord, Role
from scrawn.server.pricing import currency
from scrawn.server.projects import removal, service
from scrawn.server.projects.types import ProjectMoney

projects_app = typer.Typer(
    help="Projects: name, currency, amount unit, the USD rate for LLM prices, the late-event window, the "
    "time zone.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)

ProjectArg = Annotated[str, id_argument("project")]


def _rate(p: ProjectMoney) -> str:
    if p.currency == currency.USD:
        return "1"
    return "not set" if p.usd_rate is None else format_amount(p.usd_rate)


def _project(p: ProjectMoney) -> dict[str, Any]:
    rate = None if p.currency != currency.USD and p.usd_rate is None else _rate(p)
    return fields(p, "id", "name", "currency", "amount_unit", usd_rate=rate) | {
        "late_window_days": p.late_window_days,
        "time_zone": p.time_zone,
    }


def _say_project(cli: Cli, p: ProjectMoney) -> None:
    say(
        cli,
        f"project {p.id} ({p.name}): currency {p.currency}, amount unit {p.amount_unit}, "
        f"usd rate {_rate(p)}, late window {p.late_window_days} days, time zone {p.time_zone}",
        _project(p),
    )


@projects_app.command("list")
@options(project=False, wide=True)
def projects_list(cli: Cli) -> None:
    """Every project with its currency, amount unit, USD rate (its minor units per US cent) and late-event
    window (events reported longer ago than that are refused)."""

    async def work(db: Database) -> list[ProjectMoney]:
        async with db.read() as conn:
            return await service.list_all(conn)

    rows = [_project(p) for p in cli.run(work)]
    extra = ("amount_unit", "late_window_days", "time_zone")
    table(cli, rows, extra=extra, fmt={"late_window_days": "{} days".format})


@projects_app.command("set")
@options()
def projects_set(
    cli: Cli,
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

    p = cli.write(work)
    _say_project(cli, p)
    if p.currency != currency.USD and p.usd_rate is None and not cli.json:
        console.print(
            f"note: LLM usage priced by the USD model price book is refused until you "
            f"{currency.SET_RATE_HINT}; tag prices and explicit amounts are billed as given",
            highlight=False,
        )


@projects_app.command("rename")
@options(project=False)
def projects_rename(cli: Cli, project: ProjectArg, new_name: str) -> None:
    """Rename a project (its id stays)."""

    async def work(db: Database) -> ProjectMoney:
        async with db.write() as conn:
            return await service.update_project(conn, await project_of(conn, project), name=new_name)

    _say_project(cli, cli.run(work))


@projects_app.command("delete")
@options(project=False)
def projects_delete(
    cli: Cli,
    project: ProjectArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even with money on its ledger (entries or balances)")
    ] = False,
) -> None:
    """Delete a project and everything it holds: keys, prices, events, ledger, wallets, usage, payments,
    webhooks. Refused while its ledger holds money unless --force."""

    async def work(db: Database) -> tuple[str, dict[str, int]]:
        async with db.write() as conn:
            project_id = await project_of(conn, project)
            return project_id, await removal.delete_project(conn, project_id, force=force)

    project_id, removed = cli.run(work)
    rows = sum(n for what, n in removed.items() if what != "project")
    say(cli, f"deleted project {project_id} and {rows} rows it held", {"id": project_id, "deleted": removed})


@options(project=False)
def init(
    cli: Cli,
    name: Annotated[str, typer.Option(help="Project name")] = "default",
    new: Annotated[
        bool, typer.Option("--new", help="Create another project even when one has this name")
    ] = False,
) -> None:
    """Create the schema if needed, a project, and its first dashboard key (printed once).

    Run again, it reuses the project of that name (unless --new)."""

    async def work(db: Database) -> tuple[str, str | None]:
        created = await service.bootstrap(db, cli.settings, name, only_if_empty=False, unless_named=not new)
        if created is not None:
            return created
        async with db.read() as conn:  # the first project of that name
            return next(p for p, n in await service.list_projects(conn) if n == name), None

    project_id, key = cli.run(work, create=True)
    if cli.json:
        say(cli, "", {"project_id": project_id, "name": name, "created": key is not None, "dash_key": key})
    elif key is None:
        console.print(
            f"Project {project_id} ({name}) exists already; nothing created. "
            "`scrawn init --new` creates another; `scrawn keys create --role dash` makes a key.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        print_new_key(project_id, key)


def print_new_key(project_id: str, key: str) -> None:
    console.print(f"Project [bold]{project_id}[/bold] created.")
    console.print("Dashboard API key (shown once; store it now):")
    console.print(f"  [bold green]{key}[/bold green]")


# keys ---------------------------------------------------------------------------------------------------


def _status(k: KeyRecord, now: int) -> str:
    if k.revoked_at is not None:
        return "revoked"
    return "expired" if k.expires_at is not None and k.expires_at <= now else "active"


def _key(k: KeyRecord, now: int) -> dict[str, Any]:
    names = ("id", "name", "role", "display", "created_at", "expires_at", "last_used_at", "revoked_at")
    return fields(k, *names, status=_status(k, now))


@keys_app.command("create")
@options()
def keys_create(
    cli: Cli,
    name: Annotated[str, typer.Option(help="A name for the key")],
    role: Annotated[str, typer.Option(help="dash, live or test", parser=choice(*ROLES))] = "live",
    expires_in: Annotated[
        int | None,
        typer.Option(
            help=f"Until it expires: seconds or 90m, 12h, 30d ({MIN_EXPIRY} s to 365 days)",
            parser=duration(MIN_EXPIRY, MAX_EXPIRY),
            metavar="DURATION",
        ),
    ] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""

    async def work(db: Database) -> tuple[KeyRecord, str]:
        async with db.write() as conn:
            project_id = await project_of(conn, cli.project)
            return await KeyService(db, cli.settings.resolved_secret()).create_key(
                conn, project_id, cast(Role, role), name, expires_in
            )

    record, key = cli.run(work)
    if cli.json:
        say(cli, "", _key(record, now_ms()) | {"key": key})
    else:
        console.print(f"key id {record.id}\n[bold green]{key}[/bold green]  (shown once)")


@keys_app.command("list")
@options(wide=True)
def keys_list(cli: Cli) -> None:
    """List keys (never their secret part); a key past its expiry shows as expired."""
    found, now = cli.read(KeyService.list_keys), now_ms()
    rows = [_key(k, now) for k in found]
    table(cli, rows, extra=("display", "created_at", "last_used_at", "revoked_at"))


@keys_app.command("revoke")
@options()
def keys_revoke(cli: Cli, key_id: Annotated[str, id_argument("key")]) -> None:
    """Revoke a key: refused everywhere within a second."""

    async def work(conn: AsyncConnection, project_id: str) -> KeyRecord:
        found = pick("key", key_id, await keys.ids_matching_prefix(conn, project_id, key_id))
        return await KeyService.revoke_key(conn, project_id, found)

    k = cli.write(work)
    say(cli, f"revoked {k.id}", _key(k, now_ms()))
