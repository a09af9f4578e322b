"""``scrawn tags`` and ``scrawn expressions``: the price catalog (docs/pricing.md, docs/pricing-safety.md)."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_support import DataOpt, DbOpt, ProjectOpt, console, in_project, load_settings, reported
from scrawn.server.config import Settings
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.references import Kind, deleted_warning
from scrawn.server.pricing.types import CLI

tags_app = typer.Typer(help="Manage price tags.", no_args_is_help=True)
expressions_app = typer.Typer(help="Manage named pricing expressions.", no_args_is_help=True)


@tags_app.command("list")
def tags_list(project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """List tags with their current prices (minor units)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    table = Table("tag", "price", "version")
    for t in in_project(settings, project, catalog.list_tags):
        table.add_row(t.key, format_amount(t.price), str(t.version))
    console.print(table)


@tags_app.command("set")
def tags_set(
    key: str, price: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Create or change a tag's price (affects future events only)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with reported():
        name, amount = catalog.check_name("key", key), catalog.check_price("price", price)
    tag = in_project(
        settings, project, lambda conn, p: catalog.put_tag(conn, p, name, amount, by=CLI), write=True
    )
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
    table = Table("name", "expression", "version")
    for e in in_project(
        settings, project, lambda conn, p: catalog.current_expressions(conn, p, None)
    ).values():
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
    with reported():
        checked = catalog.check_name("name", name)
    named = in_project(
        settings,
        project,
        lambda conn, p: catalog.put_expression(conn, p, checked, expression, by=CLI),
        write=True,
    )
    console.print(f"{named.name} = {named.text} (version {named.version})")


@expressions_app.command("delete")
def expressions_delete(
    name: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Delete a named expression; refused while another expression or an event price names it."""
    _delete_entry(load_settings(database_url=database_url, data_dir=data_dir), project, "expression", name)


def _delete_entry(settings: Settings, project: str | None, kind: Kind, name: str) -> None:
    """Delete, then say how many recent events the name priced (read after the delete commits)."""
    with reported():
        checked = catalog.check_name("key" if kind == "tag" else "name", name)
    delete = catalog.delete_tag if kind == "tag" else catalog.delete_expression

    async def work(conn: AsyncConnection, project_id: str) -> str:
        await delete(conn, project_id, checked, by=CLI)
        return project_id

    project_id = in_project(settings, project, work, write=True)
    recent = in_project(settings, project_id, lambda conn, p: catalog.recent_uses(conn, p, kind, checked))
    console.print(f"deleted {name}", highlight=False)
    if recent:
        warning = deleted_warning(kind, name, recent, catalog.RECENT_DAYS)
        console.print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)
