"""``scrawn tags`` and ``scrawn expressions``: the price catalog (docs/pricing.md, docs/pricing-safety.md)."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, options
from scrawn.server.cli_output import fields, say, table
from scrawn.server.cli_support import console, reported
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.references import Kind, deleted_warning
from scrawn.server.pricing.types import CLI, NamedExpression, Tag

tags_app = typer.Typer(help="Manage price tags.", no_args_is_help=True)
expressions_app = typer.Typer(help="Manage named pricing expressions.", no_args_is_help=True)


def _tag(t: Tag) -> dict[str, Any]:
    return {"tag": t.key, **fields(t, "price", "version")}


def _expression(e: NamedExpression) -> dict[str, Any]:
    return fields(e, "name", expression=e.text, version=e.version)


@tags_app.command("list")
@options()
def tags_list(cli: Cli) -> None:
    """List tags with their current prices (minor units)."""
    table(cli, [_tag(t) for t in cli.read(catalog.list_tags)], ids=())


@tags_app.command("set")
@options()
def tags_set(cli: Cli, key: str, price: str) -> None:
    """Create or change a tag's price (affects future events only)."""
    with reported():
        name, amount = catalog.check_name("key", key), catalog.check_price("price", price)
    tag = cli.write(lambda conn, p: catalog.put_tag(conn, p, name, amount, by=CLI))
    say(cli, f"{tag.key} = {format_amount(tag.price)} (version {tag.version})", _tag(tag))


@tags_app.command("delete")
@options()
def tags_delete(cli: Cli, key: str) -> None:
    """Delete a tag (events already priced keep their price); refused while an expression or event price
    names it (docs/pricing-safety.md)."""
    _delete_entry(cli, "tag", key)


@expressions_app.command("list")
@options()
def expressions_list(cli: Cli) -> None:
    """List named expressions."""
    found = cli.read(lambda conn, p: catalog.current_expressions(conn, p, None)).values()
    table(cli, [_expression(e) for e in found], ids=())


@expressions_app.command("set")
@options()
def expressions_set(cli: Cli, name: str, expression: str) -> None:
    """Create or change a named expression, usable as expr(NAME)."""
    with reported():
        checked = catalog.check_name("name", name)
    named = cli.write(lambda conn, p: catalog.put_expression(conn, p, checked, expression, by=CLI))
    say(cli, f"{named.name} = {named.text} (version {named.version})", _expression(named))


@expressions_app.command("delete")
@options()
def expressions_delete(cli: Cli, name: str) -> None:
    """Delete a named expression; refused while another expression or an event price names it."""
    _delete_entry(cli, "expression", name)


def _delete_entry(cli: Cli, kind: Kind, name: str) -> None:
    """Delete, then say how many recent events the name priced (read after the delete commits)."""
    with reported():
        checked = catalog.check_name("key" if kind == "tag" else "name", name)
    delete = catalog.delete_tag if kind == "tag" else catalog.delete_expression

    async def work(conn: AsyncConnection, project_id: str) -> str:
        await delete(conn, project_id, checked, by=CLI)
        return project_id

    cli.project = cli.write(work)
    recent = cli.read(lambda conn, p: catalog.recent_uses(conn, p, kind, checked))
    warning = deleted_warning(kind, name, recent, catalog.RECENT_DAYS) if recent else None
    say(cli, f"deleted {name}", {"deleted": name, "recent_uses": recent, "warning": warning})
    if warning is not None and not cli.json:
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)
