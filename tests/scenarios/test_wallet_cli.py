"""``scrawn wallets``: the real command in a subprocess, on SQLite and PostgreSQL, using the same service
functions as the RPCs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scrawn.server.db.schema import balances
from tests.conftest import make_server
from tests.scenarios.wallet_checks import assert_invariants, entries_of, fetch, lots_of


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_real(database_url: str, *args: str) -> Result:
    """The installed command in its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    env |= {"SCRAWN_DATABASE_URL": database_url, "COLUMNS": "300"}
    done = subprocess.run(
        [sys.executable, "-c", "from scrawn.server.cli import main; main()", "wallets", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def scrawn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """The same command in this process (a subprocess per call would cost seconds of imports each)."""
    from scrawn.server import cli, cli_support

    for name in [k for k in os.environ if k.startswith("SCRAWN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(cli_support.console, "width", 300)
    runner = CliRunner()

    def run(database_url: str, *args: str) -> Result:
        monkeypatch.setenv("SCRAWN_DATABASE_URL", database_url)
        done = runner.invoke(cli.app, ["wallets", *args])
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception
        return Result(done.exit_code, done.stdout, done.stderr)

    return run


def test_wallets_commands(database_url: str, tmp_path: Path, scrawn: Callable[..., Result]) -> None:
    server = make_server(database_url, tmp_path)  # migrated, one project; no server process needed
    url = server.database_url
    real = run_real(url, "credit", "carol", "2", "--key", "r1")
    assert real.returncode == 0 and "grant 2" in real.stdout, real.stderr
    assert "carol" in run_real(url).stdout
    soon = str(int(time.time()) + 3600)

    out = scrawn(url, "credit", "alice", "10", "--key", "c1", "--expires-at", soon, "--description", "promo")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "grant 10" in out.stdout and "balance 10, held 0, available 10" in out.stdout
    out = scrawn(url, "credit", "alice", "10", "--key", "c1", "--expires-at", soon, "--description", "promo")
    assert out.returncode == 0 and "duplicate" in out.stdout
    out = scrawn(url, "credit", "alice", "5", "--key", "c2", "--kind", "top_up")
    assert out.returncode == 0 and "top_up 5" in out.stdout
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 7200))
    out = scrawn(url, "credit", "alice", "1", "--key", "c3", "--expires-at", later)
    assert out.returncode == 0, out.stdout
    out = scrawn(url, "debit", "alice", "12", "--key", "d1")
    assert out.returncode == 0 and "debit -12" in out.stdout and "available 4" in out.stdout
    assert [lot.remaining for lot in lots_of(server, "alice")] == [0, 0]  # soonest-expiring first: 10, then 1

    out = scrawn(url, "debit", "alice", "5", "--key", "d2")
    assert out.returncode == 1 and "Insufficient funds: amount: requested 5 but available is 4" in out.stderr
    out = scrawn(url, "settings", "alice", "--spend-cap", "13", "--low-balance-threshold", "3.5")
    assert (
        out.returncode == 0
        and "spend cap 13 per month, spent 12" in out.stdout
        and "threshold 3.5" in out.stdout
    )
    out = scrawn(url, "debit", "alice", "2", "--key", "d3")
    assert out.returncode == 1 and "Spend cap exceeded: amount:" in out.stderr
    out = scrawn(url, "settings", "alice", "--spend-cap", "none")
    assert out.returncode == 0 and "spend cap none" in out.stdout
    out = scrawn(url, "debit", "alice", "1", "--key", "d3", "--mode", "live")
    assert out.returncode == 0 and "balance 3" in out.stdout

    out = scrawn(url)
    assert out.returncode == 0 and "alice" in out.stdout and "3.5" in out.stdout
    out = scrawn(url, "--user", "alice")
    assert out.returncode == 0
    for text in ("balance 3, held 0, available 3", "credit with an expiry", "promo", "top_up", "debit"):
        assert text in out.stdout, text
    out = scrawn(url, "--mode", "test")
    assert out.returncode == 0 and "alice" not in out.stdout

    for bad, message in [
        (("credit", "bob", "--key", "x", "--", "-1"), "amount:"),
        (("credit", "bob", "NaN", "--key", "x"), "amount:"),
        (("credit", "bob", "1", "--key", "x", "--expires-at", "2001-01-01"), "expiresAt:"),
        (("credit", "bob", "1", "--key", "x", "--expires-at", "tomorrow"), "--expires-at"),
        (("credit", "bob", "1", "--key", ""), "idempotencyKey:"),
        (("credit", "bob", "1", "--key", "x", "--kind", "gift"), "kind:"),
        (("debit", "", "1", "--key", "x"), "userId:"),
        (("debit", "bob", "1", "--key", "d1"), "idempotencyKey:"),  # alice's key, another user
        (("settings", "bob", "--spend-cap", "-3"), "spendCap:"),
        (("credit", "bob", "1", "--key", "x", "--mode", "prod"), "--mode"),
    ]:
        out = scrawn(url, *bad)
        assert out.returncode != 0 and message in out.stdout + out.stderr, (bad, out.stdout, out.stderr)
    assert sorted(b.user_id for b in fetch(server, balances.select())) == ["alice", "carol"]  # none for bob
    assert [e.kind for e in entries_of(server, "alice")] == ["grant", "top_up", "grant", "debit", "debit"]
    assert_invariants(server)
