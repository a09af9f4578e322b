"""What a failed statement says: its SQL, never its values. Internal errors are logged with their cause
(docs/operations.md), and the values are customers' data, key hashes and sealed secrets."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import projects
from tests.server.fresh import Fresh


async def test_a_failed_statement_names_its_sql_but_not_its_values(fresh: Fresh) -> None:
    secret = "scrn_live_" + "s3cr3t" * 5
    with pytest.raises(IntegrityError) as failed:
        async with fresh.db.write() as conn:  # the project's own id again: refused by the primary key
            row = {"id": fresh.project_id, "name": secret, "created_at": now_ms()}
            await conn.execute(projects.insert().values(**row))
    message = str(failed.value)
    assert "INSERT INTO projects" in message
    assert secret not in message and "s3cr3t" not in message
