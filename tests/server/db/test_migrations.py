"""The migrations build exactly the schema the code declares (``db/schema.py``), on both databases: a
migration, or a shared shape in ``migrations/shapes.py``, that drifts from the tables the repositories use
fails here, not in production."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scrawn.server.db.engine import Database
from scrawn.server.db.schema import metadata


def _differences(sync_conn: Any) -> list[Any]:
    context = MigrationContext.configure(
        sync_conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_is_the_declared_schema(migrated: Database) -> None:
    async with migrated.read() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []
