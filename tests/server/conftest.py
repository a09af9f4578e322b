"""Fixtures for ``tests/server/<domain>/``: a domain's service and repository called directly on a fresh
database of each kind (``database_url`` in ``tests/conftest.py`` gives one per test), never over a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.projects.service import create_project
from tests.conftest import clone_migrated
from tests.server.fresh import Fresh


@pytest.fixture
async def migrated(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with every migration applied and no project yet."""
    db = Database(database_url)
    try:
        if not await asyncio.to_thread(clone_migrated, database_url):
            await migrate(db)
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def fresh(migrated: Database) -> Fresh:
    """The migrated database with one project in it."""
    async with migrated.write() as conn:
        project_id = await create_project(conn, "fresh")
    return Fresh(migrated, project_id)
