"""``scrawn webhooks``: the project's outbound endpoint, the outbox, its delivery log, manual replay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ModeOpt,
    ProjectOpt,
    T,
    check_mode,
    console,
    in_project,
    load_settings,
    reported,
)
from scrawn.server.clock import iso
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages

webhooks_app = typer.Typer(
    help="Outbound webhooks: the endpoint, queued and delivered messages, replay.", no_args_is_help=True
)


def _run(
    database_url: str | None,
    data_dir: Path | None,
    project: str | None,
    work: Callable[[AsyncConnection, str, SecretBox], Awaitable[T]],
    *,
    write: bool = False,
) -> T:
    """``work(conn, project_id, box)`` in one transaction on the project, ``box`` sealing the secrets."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    box = SecretBox(settings.resolved_secret())
    return in_project(settings, project, lambda conn, project_id: work(conn, project_id, box), write=write)


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
    checked_mode = check_mode(mode)

    with reported():
        checked = endpoints.check_url(url)

    async def work(conn: AsyncConnection, project_id: str, box: SecretBox) -> endpoints.Endpoint:
        found, _ = await endpoints.put(conn, box, project_id, checked_mode, checked, rotate=rotate)
        return found

    found = _run(database_url, data_dir, project, work, write=True)
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
    checked_mode = check_mode(mode)

    found = _run(
        database_url, data_dir, project, lambda conn, p, box: endpoints.get(conn, box, p, checked_mode)
    )
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
    checked_mode = check_mode(mode)

    with reported():
        checked_status = messages.check_status(status)
        checked_limit = messages.check_limit(limit)

    async def work(conn: AsyncConnection, project_id: str, _: SecretBox) -> list[Any]:
        return await messages.list_messages(conn, project_id, checked_mode, checked_status, checked_limit)

    table = Table("id", "type", "status", "attempts", "next attempt", "delivered", "created", "last error")
    for m in _run(database_url, data_dir, project, work):
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
    checked_mode = check_mode(mode)

    found = _run(
        database_url,
        data_dir,
        project,
        lambda conn, p, _: messages.attempts_of(conn, p, checked_mode, message_id),
    )
    table = Table("attempt", "at", "url", "status", "error", "ms", "response body (start)")
    for a in found:
        status = "-" if a.status_code is None else str(a.status_code)
        body = (a.response_body or "")[:80]
        row = (str(a.attempt), iso(a.attempted_at), a.url, status, a.error or "", str(a.duration_ms), body)
        table.add_row(*row)
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
    checked_mode = check_mode(mode)

    row = _run(
        database_url,
        data_dir,
        project,
        lambda conn, p, _: messages.replay(conn, p, checked_mode, message_id),
        write=True,
    )
    console.print(f"{row.id} queued again ({row.type}); a running server sends it within a second")
