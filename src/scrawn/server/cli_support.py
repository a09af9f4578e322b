"""What every ``scrawn`` command group shares: the common options, settings from flags and ``SCRAWN_*``
environment, running async work on a database with domain errors printed (exit 1), and picking the project."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ScrawnError
from scrawn.server.checks import OperatorError, database_error, require_database_file
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.db.rows import ID_PREFIX_MIN
from scrawn.server.projects.service import list_projects

console = Console()
errors = Console(stderr=True)  # stdout carries only what a pipe reads (tables, --json)
T = TypeVar("T")

DbOpt = Annotated[str | None, typer.Option("--database-url", help="Database URL [env SCRAWN_DATABASE_URL]")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env SCRAWN_DATA_DIR]")]


def load_settings(
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    data_dir: Path | None = None,
    **more: object,
) -> Settings:
    try:
        return Settings.from_env(host=host, port=port, database_url=database_url, data_dir=data_dir, **more)
    except ValueError as e:  # a malformed SCRAWN_* variable
        raise OperatorError(str(e), "fix the environment variable") from None


@contextmanager
def reported() -> Iterator[None]:
    """A domain error (``ScrawnError``) raised in the block prints as one line and exits 1."""
    try:
        yield
    except ScrawnError as e:
        fail(e.message)


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: <message>`` on stderr, then exit ``code`` (2: the command line itself is wrong). One line
    whatever the terminal's width, the message printed as is (never read as markup)."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def run_db(settings: Settings, work: Callable[[Database], Awaitable[T]], *, create: bool = False) -> T:
    """Run ``work`` on the database; a SQLite file is created only with ``create`` (``scrawn init``), and a
    database that cannot be opened or used is an ``OperatorError`` (a sentence, not a traceback)."""
    if not create:
        require_database_file(settings)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    with reported():
        try:
            return asyncio.run(main())
        except Exception as e:
            raise database_error(e, settings) or e from None


def in_project(
    settings: Settings,
    project: str | None,
    work: Callable[[AsyncConnection, str], Awaitable[T]],
    *,
    write: bool = False,
) -> T:
    """Run ``work(conn, project_id)`` in one transaction (a write one with ``write``) on ``--project`` or
    the only project; domain errors print as one line (exit 1)."""

    async def main(db: Database) -> T:
        async with db.write() if write else db.read() as conn:
            return await work(conn, await project_of(conn, project))

    return run_db(settings, main)


async def project_of(conn: AsyncConnection, project: str | None) -> str:
    """``--project`` (an id or a unique prefix of one), or the only project there is."""
    found = await list_projects(conn)
    if project is not None:
        matches = [p for p, _ in found if p.startswith(project)]
        if not matches:
            raise ScrawnError(f"project not found: {project}")
        return pick("project", project, matches)
    if len(found) != 1:
        raise ScrawnError(
            "no project yet: run `scrawn init`" if not found else "several projects: pass --project"
        )
    return found[0][0]


MIN_PREFIX = ID_PREFIX_MIN


def pick(what: str, given: str, matches: list[str]) -> str:
    """The one id ``given`` names among ``matches`` (ids equal to it or starting with it): the id itself,
    else a unique prefix of at least ``MIN_PREFIX`` characters. With no match it stays as given, for the
    service to report as not found; an ambiguous or too short prefix is a one-line error (exit 1)."""
    if given in matches or not matches:
        return given
    if len(given) < MIN_PREFIX:
        raise ScrawnError(f"{what} not found: {given} (an id prefix needs {MIN_PREFIX} characters or more)")
    if len(matches) > 1:
        more = " and more" if len(matches) > 2 else ""
        raise ScrawnError(
            f"{what} id prefix {given} is ambiguous: it matches {matches[0]}, {matches[1]}{more}; "
            "give more characters"
        )
    return matches[0]


def ts(ms: int | None) -> str:
    from scrawn.server.clock import iso

    return iso(ms) or "-"
