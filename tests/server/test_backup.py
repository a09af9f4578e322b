"""``scrawn backup PATH`` (docs/operations.md): an online copy of a SQLite deployment taken while a real
server keeps writing; the copy passes SQLite's integrity check, holds every credit acknowledged before it
began, and the runbook's restore (copy back scrawn.db and secret, start) serves the same balances."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from scrawn import Scrawn
from scrawn.server.cli import app
from tests.conftest import (
    PG_URL,
    SECRET,
    ServerHandle,
    drop_pg_database,
    free_port,
    make_server,
    new_pg_database,
)

USERS = [f"user_{i}" for i in range(5)]


class Writer(threading.Thread):
    """Credits one unit at a time, round-robin over USERS, each under its own idempotency key, until
    stopped."""

    def __init__(self, server: ServerHandle) -> None:
        super().__init__(daemon=True)
        self.client = Scrawn(api_key=server.live_key, base_url=server.base_url)
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.first = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                key = f"credit-{len(self.acked)}"
                self.client.wallet.credit(USERS[len(self.acked) % len(USERS)], 1, idempotency_key=key)
                self.acked.append(key)
                if len(self.acked) >= 20:
                    self.first.set()
        except BaseException as e:
            self.error = e
            self.first.set()
        finally:
            self.client.close()


def secret_file_server(data_dir: Path) -> ServerHandle:
    """A SQLite server whose secret is the data directory's ``secret`` file, as `scrawn init` leaves it."""
    data_dir.mkdir()
    handle = make_server(f"sqlite:///{data_dir / 'scrawn.db'}", data_dir)
    (data_dir / "secret").write_text(SECRET)
    handle.env = {k: v for k, v in handle.env.items() if k not in ("SCRAWN_SECRET", "SCRAWN_DATABASE_URL")}
    return handle


def served_balances(server: ServerHandle, log: Path, **env: str) -> dict[str, Decimal]:
    """USERS' balances as a server started like ``server`` but with ``env`` (the restored database) serves
    them to ``server``'s live key."""
    port = free_port()
    restored = replace(
        server,
        base_url=f"http://127.0.0.1:{port}",
        port=port,
        log_path=log,
        env=server.env | env | {"SCRAWN_PORT": str(port)},
    )
    restored.start()
    try:
        with Scrawn(api_key=server.live_key, base_url=restored.base_url) as client:
            return {u: client.wallet.balance(u).balance for u in USERS}
    finally:
        restored.stop()


def run_backup(env: dict[str, str], target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "backup", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_online_backup_and_restore(tmp_path: Path) -> None:
    server = secret_file_server(tmp_path / "data")
    server.start()
    writer = Writer(server)
    try:
        writer.start()
        writer.first.wait(timeout=120)
        acked_before = list(writer.acked)
        result = run_backup(server.env, tmp_path / "backup")
        writer.stop.set()
        writer.join(timeout=60)
    finally:
        server.stop()
    assert writer.error is None, writer.error
    assert result.returncode == 0, result.stdout + result.stderr
    assert "integrity ok" in result.stdout and "secret" in result.stdout
    assert len(writer.acked) > len(acked_before) >= 20  # the server took writes around the backup

    backup_db, backup_secret = tmp_path / "backup" / "scrawn.db", tmp_path / "backup" / "secret"
    assert backup_secret.read_text() == SECRET
    assert backup_secret.stat().st_mode & 0o777 == 0o600 and backup_db.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "backup" / "scrawn.db-wal").exists()  # one self-contained file
    with sqlite3.connect(backup_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = {k for (k,) in conn.execute("SELECT idempotency_key FROM ledger_entries WHERE kind = 'grant'")}
        # Σ ledger = balance for every user: the copy is one commit's state, not a torn one.
        sums = dict(conn.execute("SELECT user_id, SUM(amount) FROM ledger_entries GROUP BY user_id"))
        balances = dict(conn.execute("SELECT user_id, balance FROM balances"))
    assert set(acked_before) <= keys <= set(writer.acked)
    assert sums == balances and sum(balances.values()) == len(keys) * 1_000_000  # micro-units

    # The runbook's restore: a fresh data directory with the backup's two files, and serve.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    shutil.copy2(backup_db, restored_dir / "scrawn.db")
    shutil.copy2(backup_secret, restored_dir / "secret")
    # The original live key still authenticates: the secret came back with the database.
    served = served_balances(server, restored_dir / "server.log", SCRAWN_DATA_DIR=str(restored_dir))
    assert served == {u: Decimal(balances.get(u, 0)) / 1_000_000 for u in USERS}


def test_refuses_postgresql_and_points_to_pg_dump(tmp_path: Path) -> None:
    env = {"SCRAWN_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/anything", "SCRAWN_SECRET": SECRET}
    result = CliRunner().invoke(app, ["backup", str(tmp_path / "out")], env=env)
    assert result.exit_code == 1
    assert "SQLite databases only" in result.output and "pg_dump" in result.output
    assert not (tmp_path / "out").exists()


def test_refuses_a_missing_database_and_a_non_empty_target(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret").write_text(SECRET)
    env = {"SCRAWN_DATA_DIR": str(data), "SCRAWN_SECRET": None, "SCRAWN_DATABASE_URL": None}
    result = CliRunner().invoke(app, ["backup", str(tmp_path / "new")], env=env)
    assert result.exit_code == 1 and "no database at" in result.output
    assert not (data / "scrawn.db").exists()  # never created by looking
    assert not (tmp_path / "new").exists()

    with sqlite3.connect(data / "scrawn.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "scrawn.db").write_text("an older backup")
    result = CliRunner().invoke(app, ["backup", str(taken)], env=env)
    assert result.exit_code == 1 and "not an empty directory" in result.output
    assert (taken / "scrawn.db").read_text() == "an older backup"
    done = CliRunner().invoke(app, ["backup", str(tmp_path / "json"), "--json"], env=env)
    assert done.exit_code == 0, done.output
    copied = json.loads(done.stdout)
    assert copied == {
        "source": str(data / "scrawn.db"),
        "pages": copied["pages"],
        "database": str(tmp_path / "json" / "scrawn.db"),
        "secret": str(tmp_path / "json" / "secret"),
    }
    assert copied["pages"] >= 1 and (tmp_path / "json" / "secret").read_text() == SECRET


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import asyncpg

    async def fetch() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore")), reason="no pg_dump")
def test_postgresql_dump_and_restore_as_the_runbook_says(tmp_path: Path, postgres_ok: bool) -> None:
    """docs/operations.md#postgresql, its commands as written: pg_dump while a replica takes credits, then
    createdb, pg_restore --no-owner and `scrawn migrate` into a new database; a server on it with the same
    SCRAWN_SECRET serves the dump's balances to the old keys."""
    if not postgres_ok:
        pytest.skip("PostgreSQL unavailable")
    url, name = new_pg_database()
    restored_url = f"{url}_restored"
    try:
        server = make_server(url, tmp_path)
        server.start()
        writer = Writer(server)
        dump = tmp_path / "scrawn.dump"
        try:
            writer.start()
            writer.first.wait(timeout=120)
            acked_before = list(writer.acked)
            subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), url], check=True, timeout=120)
            writer.stop.set()
            writer.join(timeout=60)
        finally:
            server.stop()
        assert writer.error is None, writer.error
        assert len(writer.acked) > len(acked_before) >= 20

        pg = urlsplit(PG_URL)
        where = [
            "-h",
            pg.hostname or "127.0.0.1",
            "-p",
            str(pg.port or 5432),
            "-U",
            pg.username or "postgres",
        ]
        subprocess.run(["createdb", *where, f"{name}_restored"], check=True, timeout=60)
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={restored_url}", str(dump)], check=True, timeout=120
        )
        migrated = subprocess.run(
            [sys.executable, "-m", "scrawn.server.cli", "migrate"],
            env=server.env | {"SCRAWN_DATABASE_URL": restored_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (migrated.returncode, migrated.stdout.strip()) == (0, "already up to date"), migrated.stderr

        grants = pg_rows(restored_url, "SELECT idempotency_key FROM ledger_entries WHERE kind = 'grant'")
        keys = {k for (k,) in grants}
        assert set(acked_before) <= keys <= set(writer.acked)  # one snapshot, taken during the writes
        sums = dict(pg_rows(restored_url, "SELECT user_id, SUM(amount) FROM ledger_entries GROUP BY user_id"))
        balances = dict(pg_rows(restored_url, "SELECT user_id, balance FROM balances"))
        assert sums == balances and sum(balances.values()) == len(keys) * 1_000_000

        served = served_balances(server, tmp_path / "restored.log", SCRAWN_DATABASE_URL=restored_url)
        assert served == {u: Decimal(balances.get(u, 0)) / 1_000_000 for u in USERS}
    finally:
        drop_pg_database(name)
        drop_pg_database(f"{name}_restored")
