"""``scrawn webhooks``: the project's outbound endpoint, the outbox, its delivery log, manual replay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.cli_options import Cli, T, choice, id_argument, options
from scrawn.server.cli_output import fields, say, table
from scrawn.server.cli_support import console, fail, pick, reported
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages
from scrawn.server.webhooks import repository as outbox

webhooks_app = typer.Typer(
    help="Outbound webhooks: the endpoint, queued and delivered messages, replay.", no_args_is_help=True
)
MessageArg = Annotated[str, id_argument("message (msg_…)")]


def _sealed(
    cli: Cli, work: Callable[[AsyncConnection, str, SecretBox], Awaitable[T]], write: bool = False
) -> T:
    """``work(conn, project_id, box)`` in one transaction on the project, ``box`` sealing the secrets."""
    box = SecretBox(cli.settings.resolved_secret())
    run = cli.write if write else cli.read
    return run(lambda conn, project_id: work(conn, project_id, box))


async def _message(conn: AsyncConnection, project_id: str, mode: str, given: str) -> str:
    """The message id ``given`` names (a whole id or a unique prefix)."""
    found = await outbox.message_ids_matching(conn, project_id, mode, given)
    return pick("webhook message", given, found)


def _endpoint(cli: Cli, found: endpoints.Endpoint, secret: bool) -> None:
    data = {"mode": found.mode, "url": found.url, "public_key": found.public_key}
    lines = [f"url:        {found.url}", f"public key: {found.public_key}"]
    if secret:
        data["secret"] = found.secret
        lines.append(f"secret:     {found.secret}")
    say(cli, "\n".join(lines), data)


@webhooks_app.command("set-endpoint")
@options(mode=True)
def set_endpoint(
    cli: Cli,
    url: str,
    rotate: Annotated[bool, typer.Option("--rotate", help="Make a new secret and signing key")] = False,
) -> None:
    """Send this mode's webhooks to URL (the secrets are kept unless --rotate)."""
    with reported():
        checked = endpoints.check_url(url)

    async def work(conn: AsyncConnection, project_id: str, box: SecretBox) -> endpoints.Endpoint:
        found, _ = await endpoints.put(conn, box, project_id, cli.mode, checked, rotate=rotate)
        return found

    found = _sealed(cli, work, write=True)
    if not cli.json:
        console.print(f"webhooks ({found.mode}) go to {found.url}", highlight=False, soft_wrap=True)
    _endpoint(cli, found, secret=True)


@webhooks_app.command("show")
@options(mode=True)
def show(
    cli: Cli,
    reveal: Annotated[bool, typer.Option("--reveal", help="Print the whsec_ secret too")] = False,
) -> None:
    """The endpoint's URL and public key (and with --reveal its secret)."""
    found = _sealed(cli, lambda conn, p, box: endpoints.get(conn, box, p, cli.mode))
    if found is None:
        fail(f"no webhook endpoint in {cli.mode} mode")
    _endpoint(cli, found, secret=reveal)


@webhooks_app.command("list")
@options(mode=True, wide=True)
def list_(
    cli: Cli,
    status: Annotated[
        str | None,
        typer.Option("--status", help="pending, delivered or failed", parser=choice(*messages.STATUSES)),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first")] = 50,
) -> None:
    """Queued, delivered and failed messages, newest first."""
    with reported():
        checked_limit = messages.check_limit(limit)

    async def work(conn: AsyncConnection, project_id: str) -> list[Any]:
        return await messages.list_messages(conn, project_id, cli.mode, status, checked_limit)

    names = (
        "id",
        "type",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "last_error",
    )
    rows = [fields(m, *names) for m in cli.read(work)]
    table(cli, rows, extra=("next_attempt_at", "delivered_at", "created_at"))


@webhooks_app.command("attempts")
@options(mode=True, wide=True)
def attempts(cli: Cli, message_id: MessageArg) -> None:
    """The delivery log of one message."""

    async def work(conn: AsyncConnection, project_id: str) -> list[Any]:
        chosen = await _message(conn, project_id, cli.mode, message_id)
        return await messages.attempts_of(conn, project_id, cli.mode, chosen)

    names = ("message_id", "attempt", "attempted_at", "url", "status_code", "error", "duration_ms")
    rows = [fields(a, *names, "response_body") for a in cli.read(work)]
    shown = {"response_body": lambda body: body[:80]}  # the start; --json has all that was kept
    table(cli, rows, ids=(), extra=("url", "response_body"), hide=("message_id",), fmt=shown)


@webhooks_app.command("replay")
@options(mode=True)
def replay(cli: Cli, message_id: MessageArg) -> None:
    """Send a message again now, under the same webhook-id (a receiver that dedupes ignores it)."""

    async def work(conn: AsyncConnection, project_id: str) -> Any:
        chosen = await _message(conn, project_id, cli.mode, message_id)
        return await messages.replay(conn, project_id, cli.mode, chosen)

    row = cli.write(work)
    say(
        cli,
        f"{row.id} queued again ({row.type}); a running server sends it within a second",
        {"id": row.id, "type": row.type, "status": row.status, "attempts": row.attempts},
    )
