"""``scrawn backup PATH``: an online copy of a SQLite deployment (the database and the ``secret`` file),
taken while a server keeps writing. PostgreSQL is refused: ``pg_dump`` does that job (docs/operations.md)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from scrawn.errors import FailedPreconditionError, ScrawnError
from scrawn.server.cli_options import JsonOpt
from scrawn.server.cli_output import print_json
from scrawn.server.cli_support import DataOpt, DbOpt, console, load_settings, reported
from scrawn.server.config import Settings

DB_NAME, SECRET_NAME = "scrawn.db", "secret"  # the names `scrawn serve` reads in its data directory
PathArg = Annotated[
    Path, typer.Argument(help="A new (or empty) directory for scrawn.db and secret", show_default=False)
]


def sqlite_path(settings: Settings) -> Path:
    """The database file of a SQLite deployment; a clear refusal for anything else."""
    if not settings.is_sqlite:
        raise FailedPreconditionError(
            "scrawn backup copies SQLite databases only; back PostgreSQL up with pg_dump "
            "(docs/operations.md#postgresql)"
        )
    database = make_url(settings.resolved_database_url).database
    if not database or database == ":memory:":
        raise FailedPreconditionError("scrawn backup needs a SQLite database file, not an in-memory one")
    if not Path(database).is_file():
        raise FailedPreconditionError(f"no database at {database}: check --data-dir or --database-url")
    return Path(database)


def copy_database(source: Path, target: Path) -> int:
    """Copy ``source`` into the new file ``target`` with SQLite's online backup API and check the copy.

    One step (all pages at once) inside one read transaction: under WAL the server's writers carry on, and
    the copy is the database as of one commit. Stepping page by page would restart on every write and
    might never finish under load. Returns the number of pages copied."""
    # mode=rw: never create an empty database by mistake (read-only mode trips over WAL's shared memory).
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    partial = target.with_name(target.name + ".partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # money data: owner only
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)
        # A self-contained file: no -wal beside it (the server turns WAL back on when it opens it).
        dst.execute("PRAGMA journal_mode=DELETE")
        verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
        pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
    finally:
        dst.close()
        src.close()
    if verdict != "ok":
        partial.unlink()
        raise ScrawnError(f"the copy failed SQLite's integrity check ({verdict}); nothing was written")
    _fsync(partial)
    partial.rename(target)
    _fsync(target.parent)
    return pages


def secret_file(settings: Settings) -> Path | None:
    """The data directory's ``secret`` file; None when the secret comes from ``SCRAWN_SECRET`` (kept
    wherever the operator keeps it, never written out here)."""
    if settings.secret:
        return None
    source = settings.data_dir / SECRET_NAME
    if not source.is_file():
        raise FailedPreconditionError(
            f"no secret file at {source} and no SCRAWN_SECRET: without the secret the backup's API keys, "
            "sealed provider keys and webhook secrets cannot be used"
        )
    return source


def copy_secret(source: Path, target: Path) -> None:
    """Copy the secret file, mode 0600 from the start."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        shutil.copyfileobj(source.open("rb"), f)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _target_dir(path: Path) -> Path:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FailedPreconditionError(f"{path} exists and is not an empty directory: pick a new path")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def backup(
    path: PathArg, database_url: DbOpt = None, data_dir: DataOpt = None, json: JsonOpt = False
) -> None:
    """Copy a SQLite database and its secret file while the server runs (PostgreSQL: use pg_dump)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with reported():
        source, secret = sqlite_path(settings), secret_file(settings)
        target = _target_dir(path)
        pages = copy_database(source, target / DB_NAME)
        if secret is not None:
            copy_secret(secret, target / SECRET_NAME)
    if json:
        copied = {"database": str(target / DB_NAME), "secret": str(target / SECRET_NAME) if secret else None}
        print_json({"source": str(source), "pages": pages} | copied)
        return
    console.print(
        f"backed up {source} to {target / DB_NAME} ({pages} pages, integrity ok)",
        highlight=False,
        soft_wrap=True,
    )
    if secret is not None:
        console.print(
            f"and the secret to {target / SECRET_NAME} (keep it as safe as the database)", highlight=False
        )
    else:
        console.print(
            "the secret comes from SCRAWN_SECRET and is not in the backup: restore it with the same value",
            highlight=False,
            soft_wrap=True,
        )
