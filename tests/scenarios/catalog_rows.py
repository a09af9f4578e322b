"""Catalog rows written straight into the database, bypassing the rules of docs/pricing-safety.md: the
configurations an older server could store (a cycle, a name that does not exist), which pricing must still
refuse to bill and which the rules must cope with."""

from __future__ import annotations

from sqlalchemy import func, select

from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import expressions
from tests.conftest import ServerHandle, run_async


def store_unchecked_expressions(server: ServerHandle, texts: dict[str, str]) -> None:
    """Write each named expression as its next version, with no reference or cycle check."""

    async def write() -> None:
        db = server.db()
        try:
            async with db.write() as conn:
                for name, text in texts.items():
                    latest = await conn.scalar(
                        select(func.max(expressions.c.version)).where(
                            expressions.c.project_id == server.project_id, expressions.c.name == name
                        )
                    )
                    await conn.execute(
                        expressions.insert().values(
                            project_id=server.project_id,
                            name=name,
                            version=int(latest or 0) + 1,
                            text=text,
                            deleted=False,
                            created_at=now_ms(),
                        )
                    )
        finally:
            await db.dispose()

    run_async(write())
