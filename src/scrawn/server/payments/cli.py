"""``scrawn payments``: the checkout provider of a project and mode, and its checkouts (docs/payments.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.cli_options import Cli, choice, options
from scrawn.server.cli_output import fields, say, snake_case, table
from scrawn.server.cli_support import fail
from scrawn.server.payments import config as configs
from scrawn.server.payments import repository
from scrawn.server.projects.service import AMOUNT_UNITS, update_project
from scrawn.server.secretbox import SecretBox

payments_app = typer.Typer(
    help="Checkout providers (Lemon Squeezy, Stripe) and checkouts.", no_args_is_help=True
)


@payments_app.command("configure")
@options(mode=True)
def configure(
    cli: Cli,
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
        str | None,
        typer.Option(
            help="minor (amounts are cents) or major (whole units); whole project",
            parser=choice(*AMOUNT_UNITS),
        ),
    ] = None,
) -> None:
    """Set the checkout provider (replaces the one configured); the API key is stored sealed."""
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

    async def work(conn: AsyncConnection, project_id: str) -> dict[str, Any]:
        if amount_unit:  # a project setting: the same path as `scrawn projects set --amount-unit`
            await update_project(conn, project_id, amount_unit=amount_unit)
        box = SecretBox(cli.settings.resolved_secret())
        return (await configs.save(conn, box, project_id, cli.mode, values)).public()

    _print_config(cli, cli.write(work))


@payments_app.command("show")
@options(mode=True)
def show(cli: Cli) -> None:
    """The configured provider (secrets are never shown)."""

    async def work(conn: AsyncConnection, project_id: str) -> dict[str, Any] | None:
        found = await configs.load(conn, SecretBox(cli.settings.resolved_secret()), project_id, cli.mode)
        return None if found is None else found.public()

    found = cli.read(work)
    if found is None:
        fail(configs.NOT_CONFIGURED)
    _print_config(cli, found)


@payments_app.command("remove")
@options(mode=True)
def remove(cli: Cli) -> None:
    """Remove the provider: checkout links are refused until one is configured again."""
    removed = cli.write(lambda conn, p: configs.remove(conn, p, cli.mode))
    say(cli, "removed" if removed else "nothing was configured", {"removed": bool(removed)})


@payments_app.command("checkouts")
@options(mode=True, wide=True)
def list_checkouts(
    cli: Cli,
    user: Annotated[str | None, typer.Option(help="Only this user")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
) -> None:
    """Checkouts, newest first: amount, what the provider charges, status."""

    async def work(conn: AsyncConnection, project_id: str) -> list[Any]:
        return await repository.list_checkouts(conn, project_id, cli.mode, user, max(limit, 1))

    # ``charge`` and the paid and refunded charges are whole minor units of the provider's currency.
    names = ("id", "user_id", "purpose", "amount", "charge", "currency", "status", "paid_charge")
    rows = [fields(r, *names, "refunded_charge", "created_at") for r in cli.read(work)]
    table(cli, rows, extra=("purpose", "paid_charge", "refunded_charge", "created_at"))


def _print_config(cli: Cli, public: dict[str, Any]) -> None:
    found = snake_case(public)
    if cli.json:
        say(cli, "", found)
        return
    table(cli, [{"setting": k, "value": v} for k, v in found.items()], ids=())
