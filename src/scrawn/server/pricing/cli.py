"""``scrawn tags`` and ``scrawn expressions``: the price catalog (docs/pricing.md, docs/pricing-safety.md)."""

from __future__ import annotations

import typer
from rich.table import Table

from scrawn.money import format_amount
from scrawn.server.cli_support import DataOpt, DbOpt, ProjectOpt, console, load_settings, project_of, run_db
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.references import Kind, deleted_warning
from scrawn.server.pricing.types import NamedExpression, Tag

tags_app = typer.Typer(help="Manage price tags.", no_args_is_help=True)
expressions_app = typer.Typer(help="Manage named pricing expressions.", no_args_is_help=True)


@tags_app.command("list")
def tags_list(project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """List tags with their current prices (minor units)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> list[Tag]:
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

    async def work(db: Database) -> Tag:
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

    async def work(db: Database) -> list[NamedExpression]:
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

    async def work(db: Database) -> NamedExpression:
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
