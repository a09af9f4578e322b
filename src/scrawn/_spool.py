"""The durable spool of ``track()``: unacknowledged events in a local SQLite file, written before
``track()`` returns and deleted once the server acknowledged them, so that a later process with the same
``spool_path`` sends them again with the same idempotency keys."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, Final

from scrawn._tracked import AnyTracked, tracked_from_json
from scrawn.errors import (
    ValidationError,
)

log = logging.getLogger("scrawn.track")

SPOOL_MAX_EVENTS: Final = 10_000_000
SPOOL_REFILL: Final = 10_000
SPOOL_DELETE_EVERY: Final = 5_000


class Spool:
    """Unacknowledged events in a local SQLite file (stdlib ``sqlite3``, WAL mode), one process at a time.

    Two connections: the callers' (inserts only, never checkpoints) and the worker's (reads, deletes and
    the WAL checkpoints), so a checkpoint's fsync never lands in a ``track()`` call. An exclusive
    ``flock`` on ``<path>.lock`` keeps a second process away; the OS releases it when the process dies."""

    def __init__(self, path: str, *, fsync: bool) -> None:
        self.path = path
        self._closed = False
        self._lock_file = _lock_exclusively(path + ".lock")
        self._insert_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        try:
            self._db = self._connect(path, fsync)
            self._db.execute("PRAGMA wal_autocheckpoint=0")  # the worker checkpoints (see delete())
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS scrawn_spool "
                "(seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)"
            )
            self._wdb = self._connect(path, fsync)
        except sqlite3.Error as e:
            if self._lock_file is not None:
                self._lock_file.close()
            raise ValidationError(
                "spool_path", f"is not usable: {e}", context="Invalid client option"
            ) from None

    @staticmethod
    def _connect(path: str, fsync: bool) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of this process (the OS has the data); FULL also
        # survives a power cut, at the cost of an fsync per track().
        db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        return db

    def count(self) -> int:
        with self._worker_lock:
            row = self._wdb.execute("SELECT count(*) FROM scrawn_spool").fetchone()
        return int(row[0])

    def insert(self, event: AnyTracked) -> int:
        text = event.to_json()
        with self._insert_lock:
            cursor = self._db.execute("INSERT INTO scrawn_spool (event) VALUES (?)", (text,))
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def load(self, after: int, limit: int) -> tuple[list[tuple[int, AnyTracked]], int]:
        """Up to ``limit`` records after ``after``, and how many rows were unreadable (deleted, logged)."""
        with self._worker_lock:
            rows = self._wdb.execute(
                "SELECT seq, event FROM scrawn_spool WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        loaded: list[tuple[int, AnyTracked]] = []
        bad = 0
        for seq, text in rows:
            try:
                loaded.append((int(seq), tracked_from_json(text)))
            except (ValueError, TypeError) as e:
                log.error("scrawn spool %s: unreadable record %d dropped (%s)", self.path, seq, e)
                self.delete([int(seq)])
                bad += 1
        return loaded, bad

    def last_seq(self) -> int:
        with self._worker_lock:
            row = self._wdb.execute("SELECT coalesce(max(seq), 0) FROM scrawn_spool").fetchone()
        return int(row[0])

    def delete(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._worker_lock:
            self._wdb.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(seqs), 500):
                    chunk = seqs[start : start + 500]
                    self._wdb.execute(
                        f"DELETE FROM scrawn_spool WHERE seq IN ({','.join('?' * len(chunk))})",  # noqa: S608
                        tuple(chunk),
                    )
                self._wdb.execute("COMMIT")
            except BaseException:
                self._wdb.execute("ROLLBACK")
                raise
            # PASSIVE: copies what it can without blocking the callers' inserts.
            self._wdb.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._insert_lock, self._worker_lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._wdb.close()
            if self._lock_file is not None:
                self._lock_file.close()


def _lock_exclusively(path: str) -> Any:
    """Hold an exclusive advisory lock on ``path`` for the life of the returned file (POSIX ``flock``;
    elsewhere no lock is taken)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - kept open: the lock lives as long as the file
    except OSError as e:
        raise ValidationError(
            "spool_path", f"cannot be opened: {e}", context="Invalid client option"
        ) from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ValidationError(
            "spool_path",
            "is in use by another process (each process needs its own spool file)",
            context="Invalid client option",
        ) from None
    return handle


__all__ = ["Spool"]
