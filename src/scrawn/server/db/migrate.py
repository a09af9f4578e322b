"""Schema migrations with Alembic (``scrawn migrate``; an empty SQLite database is migrated on start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from scrawn.server.db.engine import Database

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x5C4A_0001  # PostgreSQL advisory lock: one migrator at a time across replicas


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
