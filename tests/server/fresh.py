"""What the domain tests share: a fresh database (every migration applied) holding one project, on SQLite
and on PostgreSQL. ``tests/server/conftest.py`` makes it the ``fresh`` fixture (and ``migrated``, the same
database before any project exists)."""

from __future__ import annotations

from dataclasses import dataclass

from scrawn.server.db.engine import Database


@dataclass(frozen=True)
class Fresh:
    db: Database
    project_id: str
