"""The ``scrawn`` command (Typer + Rich)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ScrawnError
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
from scrawn.server.config import DEFAULT_PORT, Settings
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.db.schema import balances, events
from scrawn.server.events.cli import events_app
from scrawn.server.keys.service import ROLES, KeyService, create_project, list_projects
from scrawn.server.payments.cli import payments_app
from scrawn.server.pricing import catalog
from scrawn.server.pricing.references import Kind, deleted_warning
from scrawn.server.projects_cli import projects_app
from scrawn.server.usage.cli import prices_app, usage_app
from scrawn.server.webhooks.cli import webhooks_app

app = typer.Typer(help="Scrawn: self-hosted usage-based billing.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
tags_app = typer.Typer(help="Manage price tags.", no_args_is_help=True)
expressions_app = typer.Typer(help="Manage named pricing expressions.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(tags_app, name="tags")
app.add_typer(expressions_app, name="expressions")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(payments_app, name="payments")  # docs/payments.md
app.add_typer(projects_app, name="projects")  # docs/usage.md
app.add_typer(prices_app, name="prices")  # docs/usage.md
app.add_typer(usage_app, name="usage")
app.add_typer(events_app, name="events")  # docs/cli.md

HostOpt = Annotated[str | None, typer.Option("--host", help="Bind address [env SCRAWN_HOST; 127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option("--port", help=f"Port [env SCRAWN_PORT; {DEFAULT_PORT}]")]


async def bootstrap(
    db: Database, settings: Settings, name: str, *, only_if_empty: bool
) -> tuple[str, str] | None:
    """Migrate, then create a project and its first dash key (shown once)."""
    if db.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    await migrate(db)
    async with db.write() as conn:
        if only_if_empty and await list_projects(conn):
            return None
        project_id = await create_project(conn, name)
        _, key = await KeyService(db, settings.resolved_secret()).create_key(
            conn, project_id, "dash", "initial"
        )
    return project_id, key


def _print_new_key(project_id: str, key: str) -> None:
    console.print(f"Project [bold]{project_id}[/bold] created.")
    console.print("Dashboard API key (shown once; store it now):")
    console.print(f"  [bold green]{key}[/bold green]")


@app.command()
def serve(
    host: HostOpt = None, port: PortOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Run the server (gRPC, Connect, gRPC-web and the JSON API on one port)."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from scrawn.server.app import create_app, ensure_schema

    settings = load_settings(host, port, database_url, data_dir)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    async def main() -> None:
        db = Database(settings.resolved_database_url)
        try:
            if settings.is_sqlite:
                created = await bootstrap(db, settings, "default", only_if_empty=True)
                if created:
                    _print_new_key(*created)
            else:
                await ensure_schema(db)
        finally:
            await db.dispose()
        config = Config()
        config.bind = [f"{settings.host}:{settings.port}"]
        config.keep_alive_max_requests = 2**62  # the default (1,000) drops calls in flight on HTTP/2
        config.graceful_timeout = 30
        config.accesslog = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"scrawn serving on http://{settings.host}:{settings.port}", highlight=False)
        await hypercorn_serve(create_app(settings), config, shutdown_trigger=stop.wait)

    asyncio.run(main())


@app.command()
def init(
    name: Annotated[str, typer.Option(help="Project name")] = "default",
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Create the schema if needed, a project, and its first dashboard key (printed once)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    created = run_db(settings, lambda db: bootstrap(db, settings, name, only_if_empty=False))
    assert created is not None
    _print_new_key(*created)


@app.command(name="migrate")
def migrate_command(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Apply database migrations (Alembic) up to the latest."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_db(settings, migrate)
    console.print("database is up to date")


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

    async def work(db: Database) -> list[Any]:
        async with db.read() as conn:
            return await KeyService.list_keys(conn, await project_of(conn, project))

    table = Table("id", "name", "role", "key", "created", "expires", "status")
    for k in run_db(settings, work):
        status = "revoked" if k.revoked_at else "active"
        table.add_row(k.id, k.name, k.role, k.display, ts(k.created_at), ts(k.expires_at), status)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Revoke a key: refused everywhere within a second."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> None:
        async with db.write() as conn:
            await KeyService.revoke_key(conn, await project_of(conn, project), key_id)

    run_db(settings, work)
    console.print(f"revoked {key_id}")


@tags_app.command("list")
def tags_list(project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """List tags with their current prices (minor units)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> list[catalog.Tag]:
        async with db.read() as conn:
            return await catalog.list_tags(conn, await project_of(conn, project))

    table = Table("tag", "price", "version")
    for t in run_db(settings, work):
        table.add_row(t.key, format_amount(t.price), str(t.version))
    console.print(table)


@tags_app.command("set")
def tags_set(
    key: str, price: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Create or change a tag's price (affects future events only)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> catalog.Tag:
        name, amount = catalog.check_name("key", key), catalog.check_price("price", price)
        async with db.write() as conn:
            return await catalog.put_tag(conn, await project_of(conn, project), name, amount)

    tag = run_db(settings, work)
    console.print(f"{tag.key} = {format_amount(tag.price)} (version {tag.version})")


@tags_app.command("delete")
def tags_delete(
    key: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Delete a tag (events already priced keep their price); refused while an expression or event price
    names it (docs/pricing-safety.md)."""
    _delete_entry(load_settings(database_url=database_url, data_dir=data_dir), project, "tag", key)


@expressions_app.command("list")
def expressions_list(
    project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """List named expressions."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> list[catalog.NamedExpression]:
        async with db.read() as conn:
            return list(
                (await catalog.current_expressions(conn, await project_of(conn, project), None)).values()
            )

    table = Table("name", "expression", "version")
    for e in run_db(settings, work):
        table.add_row(e.name, e.text, str(e.version))
    console.print(table)


@expressions_app.command("set")
def expressions_set(
    name: str,
    expression: str,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Create or change a named expression, usable as expr(NAME)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> catalog.NamedExpression:
        checked = catalog.check_name("name", name)
        async with db.write() as conn:
            return await catalog.put_expression(conn, await project_of(conn, project), checked, expression)

    named = run_db(settings, work)
    console.print(f"{named.name} = {named.text} (version {named.version})")


@expressions_app.command("delete")
def expressions_delete(
    name: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Delete a named expression; refused while another expression or an event price names it."""
    _delete_entry(load_settings(database_url=database_url, data_dir=data_dir), project, "expression", name)


def _delete_entry(settings: Settings, project: str | None, kind: Kind, name: str) -> None:
    """Delete, then say how many recent events the name priced (read after the delete commits)."""

    async def work(db: Database) -> int:
        checked = catalog.check_name("key" if kind == "tag" else "name", name)
        async with db.write() as conn:
            project_id = await project_of(conn, project)
            delete = catalog.delete_tag if kind == "tag" else catalog.delete_expression
            await delete(conn, project_id, checked)
        async with db.read() as conn:
            return await catalog.recent_uses(conn, project_id, kind, checked)

    recent = run_db(settings, work)
    console.print(f"deleted {name}", highlight=False)
    if recent:
        warning = deleted_warning(kind, name, recent, catalog.RECENT_DAYS)
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)


@app.command()
def users(
    mode: Annotated[str, typer.Option(help="live or test")] = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Users and their balances (minor units; negative = owed)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> list[Any]:
        async with db.read() as conn:
            project_id = await project_of(conn, project)
            rows = await conn.execute(
                select(balances.c.user_id, balances.c.balance)
                .where(balances.c.project_id == project_id, balances.c.mode == mode)
                .order_by(balances.c.user_id)
            )
            return list(rows)

    table = Table("user", "balance")
    for r in run_db(settings, work):
        table.add_row(r.user_id, format_amount(r.balance))
    console.print(table)


@app.command()
def explain(
    event_id: str,
    mode: Annotated[str, typer.Option(help="live or test")] = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Why was this event charged what it was? Shows the debit and what priced it."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> Any:
        async with db.read() as conn:
            project_id = await project_of(conn, project)
            row = (
                await conn.execute(
                    select(events).where(
                        events.c.project_id == project_id, events.c.mode == mode, events.c.id == event_id
                    )
                )
            ).first()
            if row is None:
                raise ScrawnError(f"event not found: {event_id}")
            reversal = None
            if row.voided_at is not None:
                from scrawn.server.events.void_service import describe

                reversal = await describe(conn, project_id, mode, row)
        return row, reversal

    row, reversal = run_db(settings, work)
    console.print(f"event {row.id} ({row.event_type}) for user {row.user_id!r}")
    console.print(f"charged {format_amount(row.debit)} minor units")
    if reversal is not None:
        console.print(reversal, highlight=False)
    console.print_json(json.dumps(json.loads(row.pricing)))


# Wallets (docs/wallets.md): the same service functions as wallet.v1.WalletService ----------------------

wallets_app = typer.Typer(
    help="Prepaid wallets: balances, holds, credits with an expiry, debits, spend controls.",
    invoke_without_command=True,
)
app.add_typer(wallets_app, name="wallets")


def _expires_at(text: str | None) -> int | None:
    """--expires-at: Unix seconds or an ISO 8601 time (UTC when it has no offset)."""
    from datetime import UTC, datetime

    if text is None:
        return None
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        console.print("[red]error:[/red] --expires-at must be Unix seconds or an ISO 8601 time")
        raise typer.Exit(2) from None
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


@wallets_app.callback()
def wallets(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", help="Show one user's credit, transactions, holds")
    ] = None,
    mode: ModeOpt = "live",
    limit: Annotated[int, typer.Option(help="Rows per table")] = 50,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Balance, held and available per user; with --user, that user's credit lots, transactions and
    reservations."""
    from scrawn.server.ledger import service as wallet_lots
    from scrawn.server.wallets import service as w

    if ctx.invoked_subcommand is not None:
        return
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)
    if user is None:

        async def every(db: Database) -> list[Any]:
            async with db.read() as conn:
                project_id = await project_of(conn, project)
                return list(
                    await conn.execute(
                        select(balances)
                        .where(balances.c.project_id == project_id, balances.c.mode == mode)
                        .order_by(balances.c.user_id)
                        .limit(limit)
                    )
                )

        table = Table("user", "balance", "held", "available", "spend cap / month", "low-balance threshold")
        for r in run_db(settings, every):
            table.add_row(
                r.user_id,
                format_amount(r.balance),
                format_amount(r.held),
                format_amount(r.balance - r.held),
                "-" if r.spend_cap is None else format_amount(r.spend_cap),
                "-" if r.low_balance_threshold is None else format_amount(r.low_balance_threshold),
            )
        console.print(table)
        return

    async def one(db: Database) -> tuple[Any, ...]:
        checked = w.check_user(user)
        async with db.read() as conn:
            project_id = await project_of(conn, project)
            view = await w.read_balance(conn, project_id, mode, checked)
            limits = await w.get_settings(conn, project_id, mode, checked)
            grants = await wallet_lots.lots_of(conn, project_id, mode, checked)
            txs, _ = await w.list_transactions(conn, project_id, mode, checked, limit, "")
            holds, _ = await w.list_reservations(conn, project_id, mode, checked, False, limit, "")
        return view, limits, grants, txs, holds

    view, limits, grants, txs, holds = run_db(settings, one)
    console.print(
        f"user {user!r} ({mode}): balance {format_amount(view.balance)}, held {format_amount(view.held)}, "
        f"available {format_amount(view.available)}",
        highlight=False,
    )
    cap = "none" if limits.spend_cap is None else format_amount(limits.spend_cap)
    threshold = (
        "none" if limits.low_balance_threshold is None else format_amount(limits.low_balance_threshold)
    )
    console.print(
        f"spend cap {cap} per month; spent {format_amount(limits.spent)} in "
        f"{wallet_lots.period_text(limits.period)} (UTC); low-balance threshold {threshold}",
        highlight=False,
    )
    table = Table("credit", "amount", "remaining", "expired", "expires", title="credit with an expiry")
    for g in grants:
        table.add_row(
            g.id,
            format_amount(g.amount),
            format_amount(g.remaining),
            format_amount(g.expired),
            ts(g.expires_at),
        )
    console.print(table)
    table = Table("transaction", "kind", "amount", "created", "credit expires", "description", title="ledger")
    for t in txs:
        table.add_row(
            t.id,
            t.kind,
            format_amount(t.amount),
            ts(t.created_at),
            ts(t.lot_expires_at),
            t.description or "",
        )
    console.print(table)
    table = Table("reservation", "amount", "status", "expires", "confirmed", title="reservations")
    for r in holds:
        confirmed = "" if r.confirmed_amount is None else format_amount(r.confirmed_amount)
        table.add_row(r.id, format_amount(r.amount), r.status, ts(r.expires_at), confirmed)
    console.print(table)


def _wallet_post(
    settings: Settings, project: str | None, mode: str, work: Callable[[AsyncConnection, str], Awaitable[Any]]
) -> Any:
    from sqlalchemy.exc import IntegrityError

    async def run(db: Database) -> Any:
        try:
            async with db.write() as conn:
                return await work(conn, await project_of(conn, project))
        except IntegrityError:  # the same key raced in for another user
            raise ScrawnError("idempotencyKey: already used for a different transaction") from None

    row, view, duplicate = run_db(settings, run)
    note = " (duplicate: this key was already applied; nothing changed)" if duplicate else ""
    expires = f", expires {ts(row.lot_expires_at)}" if row.lot_expires_at is not None else ""
    console.print(
        f"{row.kind} {format_amount(row.amount)} ({mode}) transaction {row.id}{expires}{note}\n"
        f"balance {format_amount(view.balance)}, held {format_amount(view.held)}, "
        f"available {format_amount(view.available)}",
        highlight=False,
    )


KeyOpt = Annotated[str, typer.Option("--key", help="Idempotency key: a retry with it is never applied twice")]
DescriptionOpt = Annotated[str, typer.Option("--description", help="Shown on the ledger entry")]


@wallets_app.command("credit")
def wallets_credit(
    user: str,
    amount: str,
    key: KeyOpt,
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="Unix seconds or ISO 8601; the remainder expires then")
    ] = None,
    kind: Annotated[str, typer.Option(help="grant, top_up or adjustment")] = "grant",
    description: DescriptionOpt = "",
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Credit a user (a grant by default), optionally expiring; idempotent by --key."""
    from scrawn.server.wallets import service as w

    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(conn: AsyncConnection, project_id: str) -> Any:
        return await w.credit(
            conn,
            project_id,
            mode,
            user_id=w.check_user(user),
            amount=w.check_amount("amount", amount),
            kind=w.check_kind(kind),
            key=w.check_key(key),
            description=w.check_description(description),
            expires_at=w.check_expires_at(_expires_at(expires_at)),
        )

    _wallet_post(settings, project, mode, work)


@wallets_app.command("debit")
def wallets_debit(
    user: str,
    amount: str,
    key: KeyOpt,
    description: DescriptionOpt = "",
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Debit a user atomically: refused past available or the user's spend cap; idempotent by --key."""
    from scrawn.server.wallets import service as w

    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(conn: AsyncConnection, project_id: str) -> Any:
        return await w.debit(
            conn,
            project_id,
            mode,
            user_id=w.check_user(user),
            amount=w.check_amount("amount", amount),
            key=w.check_key(key),
            description=w.check_description(description),
        )

    _wallet_post(settings, project, mode, work)


@wallets_app.command("settings")
def wallets_settings(
    user: str,
    spend_cap: Annotated[
        str | None, typer.Option("--spend-cap", help="Per calendar month (UTC); 'none' removes it")
    ] = None,
    low_balance_threshold: Annotated[
        str | None, typer.Option("--low-balance-threshold", help="balance.low below this; 'none' removes it")
    ] = None,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Show or change a user's spend cap and low-balance threshold."""
    from scrawn.server.ledger import service as wallet_lots
    from scrawn.server.wallets import service as w

    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    def value(text: str) -> str:
        return "" if text.strip().lower() == "none" else text

    async def work(db: Database) -> w.UserSettings:
        checked, changes = w.check_user(user), dict[str, Any]()
        if spend_cap is not None:
            changes["spend_cap"] = w.check_setting("spendCap", value(spend_cap), allow_negative=False)
        if low_balance_threshold is not None:
            changes["low_balance_threshold"] = w.check_setting(
                "lowBalanceThreshold", value(low_balance_threshold), allow_negative=True
            )
        if not changes:
            async with db.read() as conn:
                return await w.get_settings(conn, await project_of(conn, project), mode, checked)
        async with db.write() as conn:
            return await w.update_settings(conn, await project_of(conn, project), mode, checked, **changes)

    got = run_db(settings, work)
    cap = "none" if got.spend_cap is None else format_amount(got.spend_cap)
    threshold = "none" if got.low_balance_threshold is None else format_amount(got.low_balance_threshold)
    console.print(
        f"user {user!r} ({mode}): spend cap {cap} per month, spent {format_amount(got.spent)} and held "
        f"{format_amount(got.held)} in {wallet_lots.period_text(got.period)} (UTC); "
        f"low-balance threshold {threshold}",
        highlight=False,
    )


def _register_demo() -> None:
    from scrawn.server.demo import demo

    app.command(
        help="Run a server on a throwaway database and bill events of every kind through real clients."
    )(demo)


_register_demo()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
