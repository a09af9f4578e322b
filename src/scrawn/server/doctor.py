"""``scrawn doctor``: every check ``scrawn serve`` makes, plus what a running server would only find out
later (payment providers the public URL cannot serve, webhook endpoints whose messages give up), each said
as what is wrong and what to do. Exits 1 when anything is wrong; reads only, creates nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from scrawn.server import startup
from scrawn.server.checks import (
    CONNECT_TIMEOUT,
    OperatorError,
    database_error,
    require_database_file,
    require_secret,
    shown_url,
)
from scrawn.server.cli_options import JsonOpt
from scrawn.server.cli_output import print_json
from scrawn.server.cli_support import DataOpt, DbOpt, console, load_settings
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import UnknownRevision, pending
from scrawn.server.payments import repository as payments
from scrawn.server.projects.service import list_projects
from scrawn.server.webhooks import repository as webhooks


@dataclass
class Finding:
    ok: bool
    what: str
    hint: str = ""


def _local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


async def _database(settings: Settings, secret: str | None) -> list[Finding]:
    found: list[Finding] = []
    db = Database(settings.resolved_database_url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await db.ping()
        found.append(Finding(True, f"database {shown_url(settings)} answers"))
        missing = await pending(db)
        if missing:
            names = ", ".join(m.id for m in missing)
            return [*found, Finding(False, f"migrations not applied: {names}", "run `scrawn migrate`")]
        found.append(Finding(True, "schema up to date"))
        if secret is not None:
            unopened = await startup.unopened_secrets(db, secret)
            if unopened:
                error = startup.wrong_secret(unopened)
                return [*found, Finding(False, error.message, error.hint)]
            found.append(Finding(True, "the secret opens every sealed secret"))
        found += await _providers_and_endpoints(db, settings)
    except UnknownRevision as e:
        error = startup.schema_error(settings, e)
        found.append(Finding(False, error.message, error.hint))
    except Exception as e:
        error = database_error(e, settings) or OperatorError(f"{type(e).__name__}: {e}")
        found.append(Finding(False, error.message, error.hint))
    finally:
        await db.dispose()
    return found


async def _providers_and_endpoints(db: Database, settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    public = settings.resolved_public_url
    async with db.read() as conn:
        for project_id, name in await list_projects(conn):
            for mode in ("live", "test"):
                where = f"project {name} ({project_id}, {mode})"
                config = await payments.load_config(conn, project_id, mode)
                if config is not None:
                    hook = f"{public}/webhooks/{config.provider}"
                    if _local(public):
                        found.append(
                            Finding(
                                False,
                                f"{where}: {config.provider} must reach {hook}, a local address",
                                "set SCRAWN_PUBLIC_URL to the address the provider can reach",
                            )
                        )
                    else:
                        found.append(Finding(True, f"{where}: {config.provider} webhooks to {hook}"))
                endpoint = await webhooks.endpoint(conn, project_id, mode)
                if endpoint is None:
                    continue
                counts = await webhooks.count_by_status(conn, project_id, mode)
                failed, waiting = counts.get("failed", 0), counts.get("pending", 0)
                if failed:
                    found.append(
                        Finding(
                            False,
                            f"{where}: {failed} webhook message{'' if failed == 1 else 's'} "
                            f"to {endpoint.url} gave up",
                            "fix the receiver, then `scrawn webhooks replay`",
                        )
                    )
                else:
                    found.append(Finding(True, f"{where}: webhooks to {endpoint.url} ({waiting} waiting)"))
    return found


def _checks(settings: Settings) -> list[Finding]:
    found: list[Finding] = [Finding(True, "configuration read")]
    try:
        startup.log_settings(settings, None)
        require_database_file(settings)
    except OperatorError as e:
        return [*found, Finding(False, e.message, e.hint)]
    secret: str | None = None
    secret_file = settings.data_dir / "secret"
    if settings.secret is None and settings.is_sqlite and not secret_file.is_file():
        found.append(
            Finding(
                False,
                f"no secret: neither SCRAWN_SECRET nor {secret_file}",
                "set SCRAWN_SECRET to the one this database was set up with; keys made under another "
                "secret do not work",
            )
        )
    else:
        try:
            secret = require_secret(settings)
            found.append(Finding(True, "secret set"))
        except OperatorError as e:
            found.append(Finding(False, e.message, e.hint))
    return found + asyncio.run(_database(settings, secret))


def doctor(database_url: DbOpt = None, data_dir: DataOpt = None, json: JsonOpt = False) -> None:
    """Check the configuration, database, migrations, secret, payment providers and webhook endpoints."""
    findings = _checks(load_settings(database_url=database_url, data_dir=data_dir))
    if json:  # for a monitor: the same findings, and the same exit code
        checks = [{"ok": f.ok, "check": f.what, "hint": f.hint or None} for f in findings]
        print_json({"ok": all(f.ok for f in findings), "checks": checks})
    else:
        for f in findings:
            mark = "[green]ok[/green]  " if f.ok else "[red]FAIL[/red]"
            console.print(f"{mark} {escape(f.what)}", highlight=False, soft_wrap=True)
            if f.hint:
                console.print(f"      {escape(f.hint)}", highlight=False, soft_wrap=True)
    if not all(f.ok for f in findings):
        raise typer.Exit(1)
