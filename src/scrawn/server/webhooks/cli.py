"""``scrawn webhooks``: the project's outbound endpoint, the outbox, its delivery log, manual replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ScrawnError
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import list_projects
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages
from scrawn.server.webhooks.outbox import iso

webhooks_app = typer.Typer(
    help="Outbound webhooks: the endpoint, queued and delivered messages, replay.", no_args_is_help=True
)
console = Console()
T = TypeVar("T")

DbOpt = Annotated[str | None, typer.Option("--database-url", help="Database URL [env SCRAWN_DATABASE_URL]")]
DataOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env SCRAWN_DATA_DIR]")]
ProjectOpt = Annotated[str | None, typer.Option("--project", help="Project id (default: the only project)")]
ModeOpt = Annotated[str, typer.Option("--mode", help="live or test")]


def _run(
    database_url: str | None, data_dir: Path | None, work: Callable[[Database, SecretBox], Awaitable[T]]
) -> T:
    settings = Settings.from_env(database_url=database_url, data_dir=data_dir)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await work(db, SecretBox(settings.resolved_secret()))
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ScrawnError as e:
        console.print(f"[red]error:[/red] {e.message}")
        raise typer.Exit(1) from None


async def _project(conn: AsyncConnection, project: str | None) -> str:
    found = [p for p, _ in await list_projects(conn)]
    if project is not None:
        if project not in found:
            raise ScrawnError(f"project not found: {project}")
        return project
    if len(found) != 1:
        raise ScrawnError(
            "no project yet: run `scrawn init`" if not found else "several projects: pass --project"
        )
    return found[0]


def _mode(mode: str) -> str:
    try:
        return endpoints.check_mode(mode)
    except ScrawnError:
        console.print("[red]error:[/red] --mode must be live or test")
        raise typer.Exit(2) from None


@webhooks_app.command("set-endpoint")
def set_endpoint(
    url: str,
    mode: ModeOpt = "live",
    rotate: Annotated[bool, typer.Option("--rotate", help="Make a new secret and signing key")] = False,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Send this mode's webhooks to URL (the secrets are kept unless --rotate)."""
    checked_mode = _mode(mode)

    async def work(db: Database, box: SecretBox) -> endpoints.Endpoint:
        checked = endpoints.check_url(url)
        async with db.write() as conn:
            found, _ = await endpoints.put(
                conn, box, await _project(conn, project), checked_mode, checked, rotate=rotate
            )
        return found

    found = _run(database_url, data_dir, work)
    console.print(f"webhooks ({found.mode}) go to {found.url}")
    console.print(f"secret (v1, HMAC):       {found.secret}", soft_wrap=True)
    console.print(f"public key (v1a, Ed25519): {found.public_key}", soft_wrap=True)


@webhooks_app.command("show")
def show(
    mode: ModeOpt = "live",
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the whsec_ secret too")] = False,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """The endpoint's URL and public key (and with --reveal its secret)."""
    checked_mode = _mode(mode)

    async def work(db: Database, box: SecretBox) -> endpoints.Endpoint | None:
        async with db.read() as conn:
            return await endpoints.get(conn, box, await _project(conn, project), checked_mode)

    found = _run(database_url, data_dir, work)
    if found is None:
        console.print(f"no webhook endpoint in {checked_mode} mode")
        raise typer.Exit(1)
    console.print(f"url:        {found.url}", soft_wrap=True)
    console.print(f"public key: {found.public_key}", soft_wrap=True)
    if reveal:
        console.print(f"secret:     {found.secret}", soft_wrap=True)


@webhooks_app.command("list")
def list_(
    mode: ModeOpt = "live",
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first")] = 50,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Queued, delivered and failed messages, newest first."""
    checked_mode = _mode(mode)

    async def work(db: Database, _: SecretBox) -> list[Any]:
        checked_status = messages.check_status(status)
        checked_limit = messages.check_limit(limit)
        async with db.read() as conn:
            project_id = await _project(conn, project)
            return await messages.list_messages(conn, project_id, checked_mode, checked_status, checked_limit)

    table = Table("id", "type", "status", "attempts", "next attempt", "delivered", "created", "last error")
    for m in _run(database_url, data_dir, work):
        table.add_row(
            m.id,
            m.type,
            m.status,
            str(m.attempts),
            iso(m.next_attempt_at) if m.next_attempt_at else "-",
            iso(m.delivered_at) if m.delivered_at else "-",
            iso(m.created_at),
            m.last_error or "",
        )
    console.print(table)


@webhooks_app.command("attempts")
def attempts(
    message_id: str,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """The delivery log of one message."""
    checked_mode = _mode(mode)

    async def work(db: Database, _: SecretBox) -> list[Any]:
        async with db.read() as conn:
            return await messages.attempts_of(conn, await _project(conn, project), checked_mode, message_id)

    table = Table("attempt", "at", "url", "status", "error", "ms")
    for a in _run(database_url, data_dir, work):
        status = "-" if a.status_code is None else str(a.status_code)
        table.add_row(str(a.attempt), iso(a.attempted_at), a.url, status, a.error or "", str(a.duration_ms))
    console.print(table)


@webhooks_app.command("replay")
def replay(
    message_id: str,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Send a message again now, under the same webhook-id (a receiver that dedupes ignores it)."""
    checked_mode = _mode(mode)

    async def work(db: Database, _: SecretBox) -> Any:
        async with db.write() as conn:
            return await messages.replay(conn, await _project(conn, project), checked_mode, message_id)

    row = _run(database_url, data_dir, work)
    console.print(f"{row.id} queued again ({row.type}); a running server sends it within a second")
