"""An operator's mistakes, as the ``scrawn`` command meets them (docs/cli.md#errors): each one is a real
subprocess that exits non-zero with ``error: …`` and one line of what to do, no traceback (unless
``--debug``), before "serving on", and without creating a database anywhere."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scrawn.server.db.migrate import MIGRATIONS
from scrawn.server.secretbox import SecretBox
from tests.conftest import (
    PG_URL,
    SECRET,
    ServerHandle,
    drop_pg_database,
    free_port,
    make_server,
    new_pg_database,
    run_async,
)

N_MIGRATIONS = len(list((MIGRATIONS / "versions").glob("0*.py")))


def scrawn(cwd: Path, *args: str, env: dict[str, str] | None = None, code: str = "") -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")}
    base["SCRAWN_PORT"] = str(free_port())  # a serve that got past its checks must not meet another's
    command = ["-c", code, *args] if code else ["-m", "scrawn.server.cli", *args]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=cwd,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def refused(cwd: Path, *args: str, env: dict[str, str] | None = None, code: str = "") -> str:
    """The one-line message of a refused command (asserting the shape every refusal has)."""
    rc, out = scrawn(cwd, *args, env=env, code=code)
    assert rc == 1, out
    assert "Traceback" not in out and "serving on" not in out, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2, out
    return lines[0]


def nothing_created(where: Path) -> None:
    assert not list(where.rglob("*.db")), list(where.rglob("*"))
    assert not (where / "scrawn-data").exists()


@pytest.fixture
def pg_empty(postgres_ok: bool) -> Iterator[str]:
    if not postgres_ok:
        pytest.skip("PostgreSQL unavailable")
    url, name = new_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


async def add_endpoint(handle: ServerHandle) -> None:
    """A live webhook endpoint, its secrets sealed under the tests' SECRET."""
    from scrawn.server.webhooks import endpoints

    db = handle.db()
    try:
        async with db.write() as conn:
            await endpoints.put(conn, SecretBox(SECRET), handle.project_id, "live", "https://example.com/h")
    finally:
        await db.dispose()


def test_commands_in_a_directory_without_a_database(tmp_path: Path) -> None:
    for args in (["keys", "list"], ["tags", "list"], ["migrate"]):
        assert "no Scrawn database at scrawn-data/scrawn.db" in refused(tmp_path, *args)
    nothing_created(tmp_path)
    explicit = {"SCRAWN_DATABASE_URL": f"sqlite:///{tmp_path}/elsewhere/x.db"}
    assert f"no Scrawn database at {tmp_path}/elsewhere/x.db" in refused(tmp_path, "users", env=explicit)
    nothing_created(tmp_path)


def test_a_sqlite_file_without_the_schema(tmp_path: Path) -> None:
    """An empty file where the database should be (made by hand, or another program's): refused, not used."""
    (tmp_path / "scrawn-data").mkdir()
    (tmp_path / "scrawn-data" / "scrawn.db").touch()
    for args in (["keys", "list"], ["users"]):
        assert "sqlite:///scrawn-data/scrawn.db has no Scrawn schema" in refused(tmp_path, *args)
    rc, out = scrawn(tmp_path, "doctor")
    assert rc == 1 and "FAIL migrations not applied: 0001" in out, out


def test_migrate_creates_only_when_asked_and_says_what_it_applied(tmp_path: Path) -> None:
    rc, out = scrawn(tmp_path, "migrate", "--create")
    assert rc == 0, out
    applied = [line for line in out.splitlines() if line.startswith("applied ")]
    assert len(applied) == N_MIGRATIONS and applied[0].startswith("applied 0001: "), out
    assert f"{N_MIGRATIONS} migrations applied" in out
    assert (tmp_path / "scrawn-data" / "scrawn.db").is_file()
    rc, out = scrawn(tmp_path, "migrate")
    assert (rc, out.strip()) == (0, "already up to date")
    assert scrawn(tmp_path, "migrate", "--json") == (0, '{\n  "applied": []\n}\n')
    (tmp_path / "other").mkdir()
    rc, out = scrawn(tmp_path / "other", "migrate", "--create", "--json")
    applied = json.loads(out)["applied"]
    assert rc == 0 and len(applied) == N_MIGRATIONS and applied[0]["id"] == "0001", out


def test_serve_with_a_sqlite_url_into_a_missing_directory(tmp_path: Path) -> None:
    env = {"SCRAWN_DATABASE_URL": f"sqlite:///{tmp_path}/nowhere/scrawn.db"}
    assert "the directory" in refused(tmp_path, "serve", env=env)
    nothing_created(tmp_path)


def test_serve_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert f"port {port} on 127.0.0.1 is already in use" in refused(tmp_path, "serve", "--port", port)
    nothing_created(tmp_path)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {"SCRAWN_PORT": "eighty"}, "SCRAWN_PORT must be a whole number"),
        (["--log-format", "xml"], {}, "log format must be json or console"),
        ([], {"SCRAWN_LOG_FORMAT": "yaml"}, "log format must be json or console"),
        ([], {"SCRAWN_LOG_LEVEL": "loud"}, "SCRAWN_LOG_LEVEL must be one of"),
        ([], {"SCRAWN_WEBHOOK_RETRY_SCHEDULE": "5,x"}, "SCRAWN_WEBHOOK_RETRY_SCHEDULE"),
        (["--port", "70000"], {}, "port 70000 is not a TCP port"),
        ([], {"SCRAWN_WORKERS": "many"}, "SCRAWN_WORKERS must be a whole number"),
        (["--workers", "0"], {}, "--workers (SCRAWN_WORKERS) must be 1 or more, not 0"),
        (["--workers", "2"], {"SCRAWN_SERVER": "pyvoy"}, "above 1 is for hypercorn"),
    ],
)
def test_serve_with_bad_values(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    assert message in refused(tmp_path, "serve", *args, env=env)
    nothing_created(tmp_path)


def test_unreachable_postgres(tmp_path: Path) -> None:
    env = {"SCRAWN_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/scrawn", "SCRAWN_SECRET": SECRET}
    for command in ("serve", "migrate"):
        assert "cannot reach the database at postgresql://postgres@127.0.0.1:1/scrawn" in refused(
            tmp_path, command, env=env
        )
    missing = {"SCRAWN_DATABASE_URL": PG_URL.rsplit("/", 1)[0] + "/no_such_db", "SCRAWN_SECRET": SECRET}
    assert "does not exist" in refused(tmp_path, "serve", env=missing)
    nothing_created(tmp_path)


def test_postgres_without_secret_unmigrated_and_wrong_secret(tmp_path: Path, pg_empty: str) -> None:
    env = {"SCRAWN_DATABASE_URL": pg_empty}
    assert "SCRAWN_SECRET is not set" in refused(tmp_path, "serve", env=env)
    env["SCRAWN_SECRET"] = SECRET
    assert "schema is missing or not up to date" in refused(tmp_path, "serve", env=env)
    assert "has no Scrawn schema" in refused(tmp_path, "keys", "list", env=env)
    rc, out = scrawn(tmp_path, "migrate", env=env)
    assert rc == 0 and f"{N_MIGRATIONS} migrations applied" in out, out
    # A webhook endpoint sealed under SECRET, then a server started with another one.
    handle = make_server(pg_empty, tmp_path / "data")
    run_async(add_endpoint(handle))
    env["SCRAWN_SECRET"] = "another-secret-" + "y" * 20
    assert "SCRAWN_SECRET does not open the secrets sealed" in refused(tmp_path, "serve", env=env)
    nothing_created(tmp_path)


@pytest.mark.parametrize(
    ("package", "args", "env", "message"),
    [
        ("typer", ["--help"], {}, "needs the Python package 'typer'"),
        # Before any check or file: a SQLite database is not made for a server that cannot start.
        ("hypercorn", ["serve"], {}, "needs the Python package 'hypercorn'"),
        ("pyvoy", ["serve"], {"SCRAWN_SERVER": "pyvoy"}, "SCRAWN_SERVER=pyvoy but pyvoy is not installed"),
    ],
)
def test_missing_server_extra(
    tmp_path: Path, package: str, args: list[str], env: dict[str, str], message: str
) -> None:
    blocked = f"import sys; sys.modules[{package!r}] = None; from scrawn.server.entry import main; main()"
    assert message in refused(tmp_path, *args, env=env, code=blocked)
    nothing_created(tmp_path)


def test_debug_shows_the_traceback_and_version_prints(tmp_path: Path) -> None:
    rc, out = scrawn(tmp_path, "keys", "list", "--debug")
    assert rc == 1 and "Traceback" in out and "no Scrawn database" in out
    rc, out = scrawn(tmp_path, "--version")
    assert rc == 0 and out.startswith("scrawn ")
    nothing_created(tmp_path)


def doctor_json(cwd: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "doctor", "--json"],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("SCRAWN_")} | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0) and "Traceback" not in done.stderr, done.stderr
    return done.returncode, report


def test_doctor_on_sqlite(tmp_path: Path) -> None:
    rc, out = scrawn(tmp_path, "doctor")
    assert rc == 1 and "FAIL no Scrawn database at scrawn-data/scrawn.db" in out, out
    rc, report = doctor_json(tmp_path)
    assert rc == 1 and report["checks"][-1]["check"].startswith("no Scrawn database"), report
    assert report["checks"][-1]["hint"]
    nothing_created(tmp_path)
    assert scrawn(tmp_path, "init")[0] == 0
    rc, out = scrawn(tmp_path, "doctor")
    assert rc == 0 and "schema up to date" in out and "FAIL" not in out, out
    rc, report = doctor_json(tmp_path)
    assert rc == 0 and {"ok": True, "check": "schema up to date", "hint": None} in report["checks"]


def test_doctor_on_postgresql(tmp_path: Path, pg_empty: str) -> None:
    # Not migrated yet.
    env = {"SCRAWN_DATABASE_URL": pg_empty, "SCRAWN_SECRET": SECRET}
    rc, out = scrawn(tmp_path, "doctor", env=env)
    assert rc == 1 and "FAIL migrations not applied: 0001" in out and "scrawn migrate" in out, out
    # Then with a payment provider and a webhook endpoint.
    handle = make_server(pg_empty, tmp_path / "pg")

    async def configure() -> None:
        from scrawn.server.payments import config as configs
        from scrawn.server.webhooks import endpoints

        db, box = handle.db(), SecretBox(SECRET)
        try:
            async with db.write() as conn:
                stripe = {"provider": "stripe", "apiKey": "sk_test_abcdef123456", "webhookSecret": "whsec_x"}
                await configs.save(conn, box, handle.project_id, "live", stripe)
                await endpoints.put(conn, box, handle.project_id, "live", "https://example.com/h")
        finally:
            await db.dispose()

    run_async(configure())
    rc, out = scrawn(tmp_path, "doctor", env=env)
    assert rc == 1 and "stripe must reach http://127.0.0.1:" in out and "SCRAWN_PUBLIC_URL" in out, out
    assert "webhooks to https://example.com/h (0 waiting)" in out
    rc, out = scrawn(tmp_path, "doctor", env=env | {"SCRAWN_PUBLIC_URL": "https://billing.example.com"})
    assert rc == 0 and "stripe webhooks to https://billing.example.com/webhooks/stripe" in out, out
    rc, out = scrawn(tmp_path, "doctor", env=env | {"SCRAWN_SECRET": "another-secret-" + "y" * 20})
    assert rc == 1 and "FAIL SCRAWN_SECRET does not open the secrets sealed" in out, out
    assert "Traceback" not in out

    async def give_up() -> None:  # a message whose every delivery attempt failed
        from scrawn.server.db.schema import webhook_messages
        from scrawn.server.webhooks import outbox

        db = handle.db()
        try:
            async with db.write() as conn:
                await outbox.enqueue(conn, handle.project_id, "live", "balance.low", {"userId": "u"})
                await conn.execute(webhook_messages.update().values(status="failed"))
        finally:
            await db.dispose()

    run_async(give_up())
    rc, out = scrawn(tmp_path, "doctor", env=env | {"SCRAWN_PUBLIC_URL": "https://billing.example.com"})
    assert rc == 1 and "1 webhook message to https://example.com/h gave up" in out, out
    assert "scrawn webhooks replay" in out


def test_rotating_a_webhook_endpoint_sealed_under_an_old_secret_lets_the_server_start(
    tmp_path: Path, pg_empty: str
) -> None:
    handle = make_server(pg_empty, tmp_path / "data")
    run_async(add_endpoint(handle))
    env = {"SCRAWN_DATABASE_URL": pg_empty, "SCRAWN_SECRET": "rotated-secret-" + "z" * 20}
    rc, out = scrawn(tmp_path, "doctor", env=env)
    assert rc == 1 and "FAIL SCRAWN_SECRET does not open the secrets sealed" in out, out
    rc, out = scrawn(tmp_path, "webhooks", "set-endpoint", "https://example.com/h", "--rotate", env=env)
    assert rc == 0 and "whsec_" in out, out
    rc, out = scrawn(tmp_path, "doctor", env=env | {"SCRAWN_PUBLIC_URL": "https://billing.example.com"})
    assert rc == 0, out
