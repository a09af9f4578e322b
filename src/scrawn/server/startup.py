"""What ``scrawn serve`` does before "serving on": logging set up, then every check an operator can act on
(the port, the secret, the database and its schema) so that a mistake is a sentence and nothing starts."""

from __future__ import annotations

import asyncio
import logging

from scrawn.server import logs, tracing
from scrawn.server.checks import (
    CONNECT_TIMEOUT,
    OperatorError,
    check_port,
    database_error,
    require_secret,
    require_sqlite_directory,
)
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import UnknownRevision, pending
from scrawn.server.payments import config as payment_configs
from scrawn.server.projects.service import bootstrap, list_projects
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints

log = logging.getLogger("scrawn.serve")


def log_settings(settings: Settings, log_format: str | None) -> tuple[str, logs.LogFormat]:
    """The log level and format asked for, or what is wrong with them."""
    level = settings.log_level.strip().lower()
    if level not in logs.LOG_LEVELS:
        raise OperatorError(
            f"SCRAWN_LOG_LEVEL must be one of {', '.join(logs.LOG_LEVELS)}, not {settings.log_level!r}"
        )
    try:
        chosen = logs.resolve_format(log_format or settings.log_format)
    except ValueError as e:
        raise OperatorError(str(e), "pass --log-format json or console (SCRAWN_LOG_FORMAT)") from None
    return level, chosen


def configure_logging(settings: Settings, log_format: str | None, *, pid: bool = False) -> None:
    level, chosen = log_settings(settings, log_format)
    logs.configure(level, chosen, sql=settings.log_sql, pid=pid)
    tracing.configure()


async def unopened_secrets(db: Database, secret: str) -> list[str]:
    """The sealed secrets (payment providers, webhook endpoints) that ``secret`` does not open."""
    box = SecretBox(secret)
    found: list[str] = []
    async with db.read() as conn:
        for project_id, _ in await list_projects(conn):
            for mode in ("live", "test"):
                where = f"project {project_id} ({mode})"
                try:
                    await payment_configs.load(conn, box, project_id, mode)
                except Exception:
                    found.append(f"{where}: payment provider")
                try:
                    await endpoints.get(conn, box, project_id, mode)
                except ValueError:
                    found.append(f"{where}: webhook endpoint")
    return found


def wrong_secret(found: list[str]) -> OperatorError:
    return OperatorError(
        f"SCRAWN_SECRET does not open the secrets sealed in the database ({found[0]}"
        + (f" and {len(found) - 1} more)" if len(found) > 1 else ")"),
        "set SCRAWN_SECRET to the secret this database was set up with",
    )


def schema_error(settings: Settings, exc: UnknownRevision | None = None) -> OperatorError:
    if exc is not None:
        return OperatorError(
            f"the database schema is at revision {exc}, which this version of Scrawn does not know",
            "run the Scrawn version that migrated it (or a newer one)",
        )
    return OperatorError("the database's Scrawn schema is missing or not up to date", "run `scrawn migrate`")


async def prepare(settings: Settings) -> tuple[str, str] | None:
    """Check everything ``serve`` needs; on SQLite create the database if new. Returns the project and dash
    key made for a new SQLite database."""
    check_port(settings.host, settings.port)
    require_sqlite_directory(settings)
    secret = require_secret(settings)
    db = Database(settings.resolved_database_url)
    created = None
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if settings.is_sqlite:
                created = await bootstrap(db, settings, "default", only_if_empty=True)
            elif await pending(db):
                raise schema_error(settings)
        if found := await unopened_secrets(db, secret):
            raise wrong_secret(found)
    except UnknownRevision as e:
        raise schema_error(settings, e) from None
    except OperatorError:
        raise
    except Exception as e:
        raise database_error(e, settings) or e from None
    finally:
        await db.dispose()
    return created
