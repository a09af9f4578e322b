"""``scrawn payments``: the checkout provider of a project and mode, and its checkouts (docs/payments.md)."""

from __future__ import annotations

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
    ts,
)
from scrawn.server.payments import config as configs
from scrawn.server.payments import repository
from scrawn.server.projects.service import update_project
from scrawn.server.secretbox import SecretBox

payments_app = typer.Typer(
    help="Checkout providers (Lemon Squeezy, Stripe) and checkouts.", no_args_is_help=True
)


@payments_app.command("configure")
def configure(
    provider: Annotated[str, typer.Option(help="lemonsqueezy or stripe")],
    api_key: Annotated[
        str, typer.Option(help="The provider's secret API key", envvar="SCRAWN_PROVIDER_API_KEY")
    ],
    webhook_secret: Annotated[
        str,
        typer.Option(help="The provider's webhook signing secret", envvar="SCRAWN_PROVIDER_WEBHOOK_SECRET"),
    ],
    currency: Annotated[str | None, typer.Option(help="ISO 4217; must be the project's (default)")] = None,
    store_id: Annotated[str | None, typer.Option(help="Lemon Squeezy store id")] = None,
    variant_id: Annotated[str | None, typer.Option(help="Lemon Squeezy variant id")] = None,
    product_name: Annotated[str | None, typer.Option(help="Stripe: the line item's name")] = None,
    return_url: Annotated[str | None, typer.Option(help="Where the payer is sent after paying")] = None,
    checkout_ttl: Annotated[
        int, typer.Option(help="Seconds a checkout stays open")
    ] = configs.DEFAULT_CHECKOUT_TTL,
    api_base: Annotated[str | None, typer.Option(help="The provider API's address (proxies, tests)")] = None,
    amount_unit: Annotated[
        str | None, typer.Option(help="minor (amounts are cents) or major (whole units); whole project")
    ] = None,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Set the checkout provider (replaces the one configured); the API key is stored sealed."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    values = {
        "provider": provider,
        "apiKey": api_key,
        "webhookSecret": webhook_secret,
        "currency": currency,
        "storeId": store_id,
        "variantId": variant_id,
        "productName": product_name,
        "returnUrl": return_url,
        "checkoutTtl": checkout_ttl,
        "apiBase": api_base,
    }
    if amount_unit not in (None, "minor", "major"):
        console.print("[red]error:[/red] --amount-unit must be minor or major")
        raise typer.Exit(2)

    async def work(conn: AsyncConnection, project_id: str) -> dict[str, Any]:
        if amount_unit:  # a project setting: the same path as `scrawn projects set --amount-unit`
            await update_project(conn, project_id, amount_unit=amount_unit)
        box = SecretBox(settings.resolved_secret())
        return (await configs.save(conn, box, project_id, check_mode(mode), values)).public()

    _print_config(in_project(settings, project, work, write=True))


@payments_app.command("show")
def show(
    mode: ModeOpt = "live", project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """The configured provider (secrets are never shown)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(conn: AsyncConnection, project_id: str) -> dict[str, Any] | None:
        found = await configs.load(conn, SecretBox(settings.resolved_secret()), project_id, check_mode(mode))
        return None if found is None else found.public()

    found = in_project(settings, project, work)
    if found is None:
        console.print(configs.NOT_CONFIGURED)
        raise typer.Exit(1)
    _print_config(found)


@payments_app.command("remove")
def remove(
    mode: ModeOpt = "live", project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Remove the provider: checkout links are refused until one is configured again."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    removed = in_project(
        settings, project, lambda conn, p: configs.remove(conn, p, check_mode(mode)), write=True
    )
    console.print("removed" if removed else "nothing was configured")


@payments_app.command("checkouts")
def list_checkouts(
    user: Annotated[str | None, typer.Option(help="Only this user")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Checkouts, newest first: amount, what the provider charges, status."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(conn: AsyncConnection, project_id: str) -> list[Any]:
        return await repository.list_checkouts(conn, project_id, check_mode(mode), user, max(limit, 1))

    table = Table("id", "user", "purpose", "amount", "charge", "status", "paid", "refunded", "created")
    for r in in_project(settings, project, work):
        table.add_row(
            r.id,
            r.user_id,
            r.purpose,
            format_amount(r.amount),
            f"{r.charge} {r.currency}",
            r.status,
            str(r.paid_charge or "-"),
            str(r.refunded_charge or "-"),
            ts(r.created_at),
        )
    console.print(table)


def _print_config(found: dict[str, Any]) -> None:
    table = Table("setting", "value")
    for key, value in found.items():
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
