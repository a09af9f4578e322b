"""``scrawn wallets`` and ``scrawn users`` (docs/wallets.md): the same service functions as
wallet.v1.WalletService."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, OptionSpecs, options
from scrawn.server.cli_output import amount, fields, print_json, say, table, when
from scrawn.server.cli_support import console, fail, reported, ts
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
        fail("--expires-at must be Unix seconds or an ISO 8601 time", 2)
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())


def _limits(spend_cap: Any, low_balance_threshold: Any) -> dict[str, Any]:
    return {"spend_cap": amount(spend_cap), "low_balance_threshold": amount(low_balance_threshold)}


@wallets_app.callback()
@options(mode=True, wide=True)
def wallets(
    cli: Cli,
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", help="Show one user's credit, transactions, holds")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per table")] = 50,
) -> None:
    """Balance, held and available per user; with --user, that user's credit lots, transactions and
    reservations."""
    from scrawn.server.ledger import service as wallet_lots
    from scrawn.server.wallets import service as w

    if ctx.invoked_subcommand is not None:
        return
    if user is None:
        rows = [
            {
                "user_id": r.user_id,
                "balance": r.balance,
                "held": r.held,
                "available": r.balance - r.held,
                **_limits(r.spend_cap, r.low_balance_threshold),
            }
            for r in cli.read(lambda conn, p: repository.list_balances(conn, p, cli.mode, limit))
        ]
        table(cli, rows, ids=(), extra=("spend_cap", "low_balance_threshold"))
        return

    with reported():
        checked = w.check_user(user)

    async def one(conn: AsyncConnection, project_id: str) -> tuple[Any, ...]:
        view = await w.read_balance(conn, project_id, cli.mode, checked)
        limits = await w.get_settings(conn, project_id, cli.mode, checked)
        grants = await wallet_lots.lots_of(conn, project_id, cli.mode, checked)
        txs, _ = await w.list_transactions(conn, project_id, cli.mode, checked, limit, "")
        holds, _ = await w.list_reservations(conn, project_id, cli.mode, checked, False, limit, "")
        return view, limits, grants, txs, holds

    view, limits, grants, txs, holds = cli.read(one)
    lots = [fields(g, "id", "amount", "remaining", "expired", "expires_at") for g in grants]
    transactions = [
        fields(t, "id", "kind", "amount", "created_at", credit_expires_at=when(t.lot_expires_at))
        | {"description": t.description or None}
        for t in txs
    ]
    reservations = [fields(r, "id", "amount", "status", "expires_at", "confirmed_amount") for r in holds]
    if cli.json:
        print_json(
            {
                "user_id": user,
                "mode": cli.mode,
                "balance": view.balance,
                "held": view.held,
                "available": view.available,
                **_limits(limits.spend_cap, limits.low_balance_threshold),
                "spent": limits.spent,
                "period": wallet_lots.period_text(limits.period),
                "credits": lots,
                "transactions": transactions,
                "reservations": reservations,
            }
        )
        return
    console.print(
        f"user {user!r} ({cli.mode}): balance {format_amount(view.balance)}, "
        f"held {format_amount(view.held)}, available {format_amount(view.available)}",
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
    table(cli, lots, title="credit with an expiry")
    table(cli, transactions, extra=("created_at", "credit_expires_at"), title="ledger")
    table(cli, reservations, extra=("expires_at",), title="reservations")


def _wallet_post(cli: Cli, work: Callable[[AsyncConnection, str], Awaitable[Any]]) -> None:
    # A key that raced in for another user: the ledger says so.
    row, view, duplicate = cli.write(work)
    note = " (duplicate: this key was already applied; nothing changed)" if duplicate else ""
    expires = f", expires {ts(row.lot_expires_at)}" if row.lot_expires_at is not None else ""
    data = {
        "transaction_id": row.id,
        "kind": row.kind,
        "amount": row.amount,
        "mode": cli.mode,
        "credit_expires_at": when(row.lot_expires_at),
        "duplicate": duplicate,
        "balance": view.balance,
        "held": view.held,
        "available": view.available,
    }
    say(
        cli,
        f"{row.kind} {format_amount(row.amount)} ({cli.mode}) transaction {row.id}{expires}{note}\n"
        f"balance {format_amount(view.balance)}, held {format_amount(view.held)}, "
        f"available {format_amount(view.available)}",
        data,
    )


# What ``wallets credit`` and ``wallets debit`` share (in ``cli.more``).
POSTING: OptionSpecs = {
    "user": (Annotated[str, typer.Argument(show_default=False)], ...),
    "amount": (Annotated[str, typer.Argument(help="Minor units, a decimal string", show_default=False)], ...),
    "key": (
        Annotated[str, typer.Option("--key", help="Idempotency key: a retry with it is never applied twice")],
        ...,
    ),
    "description": (Annotated[str, typer.Option("--description", help="Shown on the ledger entry")], ""),
}


def _post(cli: Cli, operation: str, **more: Any) -> None:
    """``credit`` or ``debit`` of the wallet service (``more``: the credit's own fields)."""
    from scrawn.server.wallets import service as w

    given = cli.more

    async def work(conn: AsyncConnection, project_id: str) -> Any:
        return await getattr(w, operation)(
            conn,
            project_id,
            cli.mode,
            user_id=w.check_user(given["user"]),
            amount=w.check_amount("amount", given["amount"]),
            key=w.check_key(given["key"]),
            description=w.check_description(given["description"]),
            **more,
        )

    _wallet_post(cli, work)


@wallets_app.command("credit")
@options(mode=True, more=POSTING)
def wallets_credit(
    cli: Cli,
    expires_at: Annotated[
        str | None, typer.Option("--expires-at", help="Unix seconds or ISO 8601; the remainder expires then")
    ] = None,
    kind: Annotated[str, typer.Option(help="grant, top_up or adjustment")] = "grant",
) -> None:
    """Credit a user (a grant by default), optionally expiring; idempotent by --key."""
    from scrawn.server.wallets import service as w

    with reported():
        checked = {"kind": w.check_kind(kind), "expires_at": w.check_expires_at(_expires_at(expires_at))}
    _post(cli, "credit", **checked)


@wallets_app.command("debit")
@options(mode=True, more=POSTING)
def wallets_debit(cli: Cli) -> None:
    """Debit a user atomically: refused past available or the user's spend cap; idempotent by --key."""
    _post(cli, "debit")


def _setting(flag: str, help_: str) -> Any:
    return typer.Option(flag, help=f"{help_}; 'none' removes it")


@wallets_app.command("settings")
@options(mode=True)
def wallets_settings(
    cli: Cli,
    user: str,
    spend_cap: Annotated[str | None, _setting("--spend-cap", "Per calendar month (UTC)")] = None,
    low_balance_threshold: Annotated[
        str | None, _setting("--low-balance-threshold", "balance.low below this")
    ] = None,
) -> None:
    """Show or change a user's spend cap and low-balance threshold."""
    from scrawn.server.ledger import service as wallet_lots
    from scrawn.server.wallets import service as w

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
            return await w.get_settings(conn, project_id, cli.mode, checked)
        return await w.update_settings(conn, project_id, cli.mode, checked, **changes)

    got = cli.write(work) if changes else cli.read(work)
    cap = "none" if got.spend_cap is None else format_amount(got.spend_cap)
    threshold = "none" if got.low_balance_threshold is None else format_amount(got.low_balance_threshold)
    data = {
        "user_id": user,
        "mode": cli.mode,
        **_limits(got.spend_cap, got.low_balance_threshold),
        "spent": got.spent,
        "held": got.held,
        "period": wallet_lots.period_text(got.period),
    }
    say(
        cli,
        f"user {user!r} ({cli.mode}): spend cap {cap} per month, spent {format_amount(got.spent)} and held "
        f"{format_amount(got.held)} in {wallet_lots.period_text(got.period)} (UTC); "
        f"low-balance threshold {threshold}",
        data,
    )


@options(mode=True, wide=True)
def users(cli: Cli) -> None:
    """Users and their balances (minor units; negative = owed)."""
    found = cli.read(lambda conn, p: repository.list_balances(conn, p, cli.mode))
    table(cli, [fields(r, "user_id", "balance") for r in found], ids=())
