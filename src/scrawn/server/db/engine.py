"""Engines and transactions. On SQLite: WAL, ``synchronous=FULL``, writes in ``BEGIN IMMEDIATE``
through one connection. Reads run in autocommit on a pool of their own on both databases: a read is one
statement or a few that need no common snapshot (PostgreSQL's READ COMMITTED would not give one anyway), and
a BEGIN/ROLLBACK pair around each would double its round trips (on PostgreSQL the pool's liveness ping also
takes one instead of three)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from scrawn.server.clock import now_ms as now_ms  # re-exported: most callers import it from here
from scrawn.server.config import normalise_database_url

# A failed statement's error names its SQL but not its values: internal errors are logged with their cause,
# and the values are customers' data, key hashes and sealed secrets.
HIDE_PARAMETERS = True


def dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing``/``on_conflict_do_update`` for the connection's database."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            # One writer: SQLite has one anyway; queueing in the pool beats spinning on busy_timeout.
            self.writer = _sqlite_engine(self.url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.reader = _sqlite_engine(self.url, begin=None, pool_size=4)
        else:
            # At most 20 connections per process, as one pool had before reads got their own.
            self.writer = _postgres_engine(self.url, pool_size=8, max_overflow=4)
            self.reader = _postgres_engine(
                self.url,
                pool_size=4,
                max_overflow=4,
                isolation_level="AUTOCOMMIT",
                skip_autocommit_rollback=True,
            )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed (and on SQLite fsynced) when the block exits cleanly."""
        async with self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.writer.dispose()
        await self.reader.dispose()


def _postgres_engine(url: str, *, pool_size: int, max_overflow: int, **options: Any) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        hide_parameters=HIDE_PARAMETERS,
        **options,
    )


def _sqlite_engine(url: str, *, begin: str | None, pool_size: int) -> AsyncEngine:
    """``begin``: the statement that opens each transaction; None for the autocommit read pool, which then
    skips the rollback (a thread hop) when a connection is closed. The driver never begins one itself."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=120,
        skip_autocommit_rollback=begin is None,
        connect_args={"timeout": 30},
        hide_parameters=HIDE_PARAMETERS,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver so that we choose its kind (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine
