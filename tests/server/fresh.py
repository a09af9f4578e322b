"""What the domain tests share: a fresh database (every migration applied) holding one project, on SQLite
and on PostgreSQL. ``tests/server/conftest.py`` makes it the ``fresh`` fixture (and ``migrated``, the same
database before any project exists)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.db.engine import Database, now_ms
from scrawn.server.db.schema import webhook_endpoints, webhook_messages


@dataclass(frozen=True)
class Fresh:
    db: Database
    project_id: str

    async def add_webhook_endpoint(self, mode: str = "live") -> None:
        """An endpoint for ``mode``: the outbox queues messages only for a project that has one."""
        async with self.db.write() as conn:
            now = now_ms()
            await conn.execute(
                webhook_endpoints.insert().values(
                    project_id=self.project_id,
                    mode=mode,
                    url="https://example.invalid/hook",
                    secret="x",
                    signing_key="x",
                    created_at=now,
                    updated_at=now,
                )
            )

    async def outbox(self) -> list[tuple[str, str]]:
        """Every queued webhook message as (type, payload), oldest first."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(webhook_messages.c.type, webhook_messages.c.payload)
                .where(webhook_messages.c.project_id == self.project_id)
                .order_by(webhook_messages.c.created_at, webhook_messages.c.id)
            )
            return [(r.type, r.payload) for r in rows]

    @asynccontextmanager
    async def while_another_holds(
        self, lock: Callable[[AsyncConnection], Awaitable[object]]
    ) -> AsyncIterator[None]:
        """Run the block while a second write transaction holds the rows ``lock`` locked (PostgreSQL's row
        locks; SQLite has one writer, so there it would wait for the block: don't)."""
        held, release = asyncio.Event(), asyncio.Event()

        async def holder() -> None:
            async with self.db.write() as conn:
                assert await lock(conn) is not None
                held.set()
                await release.wait()

        task = asyncio.create_task(holder())
        try:
            await asyncio.wait_for(held.wait(), 10)
            yield
        finally:
            release.set()
            await task
