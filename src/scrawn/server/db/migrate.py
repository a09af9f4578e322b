"""Schema migrations with Alembic (``scrawn migrate``; an empty SQLite database is migrated on start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from scrawn.server.db.engine import Database

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x5C4A_0001  # PostgreSQL advisory lock: one migrator at a time across replicas


@dataclass(frozen=True)
class Migration:
    id: str
    name: str  # the first line of the migration's docstring


class UnknownRevision(Exception):
    """The database is at a revision this version of Scrawn does not know (a newer Scrawn migrated it)."""


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _pending(sync: Connection) -> list[Migration]:
    """The migrations not yet applied to the connection's database, oldest first."""
    current = MigrationContext.configure(sync).get_current_revision()
    script = ScriptDirectory.from_config(alembic_config())
    try:
        revisions = list(script.iterate_revisions("heads", current))
    except Exception as e:  # alembic's own lookup errors: the revision is not in this tree
        raise UnknownRevision(current or "") from e
    return [Migration(r.revision, (r.doc or "").strip().splitlines()[0]) for r in reversed(revisions)]


async def pending(db: Database) -> list[Migration]:
    async with db.read() as conn:
        return await conn.run_sync(_pending)


async def migrate(db: Database, revision: str = "head") -> list[Migration]:
    """Bring the schema to ``revision``; returns what it applied (nothing when it was up to date)."""

    def upgrade(sync: Connection) -> list[Migration]:
        applied = _pending(sync)
        command.upgrade(alembic_config(sync), revision)
        return applied

    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        return await conn.run_sync(upgrade)
