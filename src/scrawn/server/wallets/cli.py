"""``scrawn wallets`` and ``scrawn users`` (docs/wallets.md): the same service functions as
wallet.v1.WalletService."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ModeOpt,
    ProjectOpt,
    check_mode,
    console,
    in_project,
    load_settings,
    reported,
    ts,
)
from scrawn.server.config import Settings
from scrawn.server.ledger import repository

wallets_app = typer.Typer(
    help="Prepaid wallets: balances, holds, credits with an expiry, debits, spend controls.",
    invoke_without_command=True,
)


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
        table = Table("user", "balance", "held", "available", "spend cap / month", "low-balance threshold")
        for r in in_project(
            settings, project, lambda conn, p: repository.list_balances(conn, p, mode, limit)
        ):
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

    with reported():
        checked = w.check_user(user)

    async def one(conn: AsyncConnection, project_id: str) -> tuple[Any, ...]:
        view = await w.read_balance(conn, project_id, mode, checked)
        limits = await w.get_settings(conn, project_id, mode, checked)
        grants = await wallet_lots.lots_of(conn, project_id, mode, checked)
        txs, _ = await w.list_transactions(conn, project_id, mode, checked, limit, "")
        holds, _ = await w.list_reservations(conn, project_id, mode, checked, False, limit, "")
        return view, limits, grants, txs, holds

    view, limits, grants, txs, holds = in_project(settings, project, one)
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
    # A key that raced in for another user: the ledger says so.
    row, view, duplicate = in_project(settings, project, work, write=True)
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

    with reported():
        checked, changes = w.check_user(user), dict[str, Any]()
        if spend_cap is not None:
            changes["spend_cap"] = w.check_setting("spendCap", value(spend_cap), allow_negative=False)
        if low_balance_threshold is not None:
            changes["low_balance_threshold"] = w.check_setting(
                "lowBalanceThreshold", value(low_balance_threshold), allow_negative=True
            )

    async def work(conn: AsyncConnection, project_id: str) -> w.UserSettings:
        if not changes:
            return await w.get_settings(conn, project_id, mode, checked)
        return await w.update_settings(conn, project_id, mode, checked, **changes)

    got = in_project(settings, project, work, write=bool(changes))
    cap = "none" if got.spend_cap is None else format_amount(got.spend_cap)
    threshold = "none" if got.low_balance_threshold is None else format_amount(got.low_balance_threshold)
    console.print(
        f"user {user!r} ({mode}): spend cap {cap} per month, spent {format_amount(got.spent)} and held "
        f"{format_amount(got.held)} in {wallet_lots.period_text(got.period)} (UTC); "
        f"low-balance threshold {threshold}",
        highlight=False,
    )


def users(
    mode: Annotated[str, typer.Option(help="live or test")] = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Users and their balances (minor units; negative = owed)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    table = Table("user", "balance")
    for r in in_project(settings, project, lambda conn, p: repository.list_balances(conn, p, mode)):
        table.add_row(r.user_id, format_amount(r.balance))
    console.print(table)
