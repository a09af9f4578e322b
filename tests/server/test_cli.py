"""The ``scrawn`` operator commands composing (``cli_options``, ``cli_output``, ``cli_support`` and each
domain's ``cli.py``): every data command's ``--json`` parses and its ids feed the commands that take ids,
id prefixes resolve (and ambiguous ones are refused), bad option values are usage errors, expired keys show
as expired, ``init`` is idempotent, and projects are renamed and deleted. The real command (Typer's
``CliRunner`` in this process) on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from scrawn.server.clock import now_ms
from scrawn.server.db.schema import metadata
from scrawn.server.events.batch import store_batch
from scrawn.server.keys import repository as keys
from scrawn.server.keys.types import KeyRecord
from scrawn.server.webhooks import outbox
from tests.conftest import ServerHandle, make_server, run_async
from tests.server.events.inputs import basic, priced


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.out + self.err
        parsed = json.loads(self.out)
        assert_snake_case(parsed)
        return parsed


def assert_snake_case(data: Any, where: str = "") -> None:
    """Field names are snake_case everywhere (docs/cli.md), whatever the JSON API calls them; a user's own
    ``metadata`` keeps its keys."""
    if isinstance(data, dict):
        for key, value in data.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", key), f"{where}.{key}"
            if key != "metadata":
                assert_snake_case(value, f"{where}.{key}")
    elif isinstance(data, list):
        for item in data:
            assert_snake_case(item, where)


Scrawn = Callable[..., Result]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> ServerHandle:
    """A migrated database with one project and its keys (no server process: the CLI reads the database)."""
    return make_server(database_url, tmp_path)


@pytest.fixture
def scrawn(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> Scrawn:
    from scrawn.server import cli, cli_support

    for name in [k for k in os.environ if k.startswith("SCRAWN_")]:
        monkeypatch.delenv(name)
    for name in ("SCRAWN_DATABASE_URL", "SCRAWN_DATA_DIR", "SCRAWN_SECRET"):
        monkeypatch.setenv(name, server.env[name])
    monkeypatch.setattr(cli_support.console, "width", 80)  # what a pipe gets
    runner = CliRunner()

    def run(*args: str) -> Result:
        done = runner.invoke(cli.app, list(args))
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception
        return Result(done.exit_code, done.stdout, done.stderr)

    return run


def store_events(server: ServerHandle, *items: tuple[str, str, str | None]) -> None:
    """Bill events (user, amount, event id) as ingest stores them: event rows and ledger entries."""

    async def store() -> None:
        db = server.db()
        try:
            async with db.write() as conn:
                batch = [
                    priced(server.project_id, basic(user, f"k-{i}-{user}", amount=amount, event_id=event_id))
                    for i, (user, amount, event_id) in enumerate(items)
                ]
                assert all(not isinstance(o, Exception) for o in await store_batch(conn, batch))
        finally:
            await db.dispose()

    run_async(store())


async def queue_message(server: ServerHandle, user: str) -> None:
    """An outbound webhook message waiting in the outbox (live mode)."""
    db = server.db()
    try:
        async with db.write() as conn:
            await outbox.enqueue(conn, server.project_id, "live", "balance.low", {"userId": user})
    finally:
        await db.dispose()


def one_line_error(done: Result, *words: str) -> None:
    text = done.out + done.err
    assert done.code == 1 and len(text.strip().splitlines()) == 1, text
    assert "Traceback" not in text and all(w in text for w in words), text


def test_json_of_every_data_command_parses_and_its_ids_feed_the_commands(
    server: ServerHandle, scrawn: Scrawn
) -> None:
    store_events(server, ("alice", "1.25", None), ("bob", "0.000001", None))
    assert scrawn("tags", "set", "CALL", "0.5", "--json").json()["price"] == "0.5"
    assert scrawn("expressions", "set", "TWICE", "mul(tag(CALL), 2)", "--json").json()["name"] == "TWICE"
    override = scrawn("prices", "set", "my-model", "--input", "1.5", "--json").json()
    assert scrawn("webhooks", "set-endpoint", "https://example.com/hook", "--json").json()["secret"]

    run_async(queue_message(server, "alice"))

    [project] = scrawn("projects", "list", "--json").json()
    assert project["id"] == server.project_id and project["usd_rate"] == "1"
    events = scrawn("events", "tail", "--json", "--project", project["id"]).out.splitlines()
    tailed = [json.loads(line) for line in events]
    assert {(e["user_id"], e["debit"]) for e in tailed} == {("alice", "1.25"), ("bob", "0.000001")}
    users = scrawn("users", "--json").json()
    assert users == [{"user_id": "alice", "balance": "-1.25"}, {"user_id": "bob", "balance": "-0.000001"}]
    assert scrawn("wallets", "--json").json()[1]["available"] == "-0.000001"
    assert scrawn("wallets", "--user", "alice", "--json").json()["transactions"][0]["amount"] == "-1.25"
    assert scrawn("tags", "list", "--json").json() == [{"tag": "CALL", "price": "0.5", "version": 1}]
    assert scrawn("expressions", "list", "--json").json()[0]["expression"] == "mul(tag(CALL), 2)"
    assert scrawn("usage", "summary", "--json").json()[0]["cost"] == "0"
    assert scrawn("usage", "series", "--json", "--bucket", "month").json()
    assert scrawn("events", "quarantine", "--json").json()["waiting"] == 0
    assert scrawn("payments", "checkouts", "--json").json() == []
    assert scrawn("webhooks", "show", "--json").json()["url"] == "https://example.com/hook"

    # Ids printed in full go back in: event → explain, key → revoke, message → attempts and replay,
    # override → delete.
    for event in tailed:
        explained = scrawn("explain", event["event_id"], "--json").json()
        assert explained["event"]["event_id"] == event["event_id"]
        assert explained["ledger_entry"]["amount"] == "-" + event["debit"]
        assert explained["pricing"] == {"amount": event["debit"]}
    listed = scrawn("keys", "list", "--json").json()
    live = next(k for k in listed if k["role"] == "live")
    assert scrawn("keys", "revoke", live["id"], "--json").json()["status"] == "revoked"
    [message] = scrawn("webhooks", "list", "--json").json()
    assert scrawn("webhooks", "attempts", message["id"], "--json").json() == []
    assert scrawn("webhooks", "replay", message["id"], "--json").json()["id"] == message["id"]
    [price] = [
        p for p in scrawn("prices", "list", "--json", "--search", "my-model").json() if p["override_id"]
    ]
    assert price["override_id"] == override["id"] and price["input"] == "1.5"
    assert scrawn("prices", "delete", price["override_id"], "--json").json() == {"deleted": override["id"]}


def test_tables_keep_ids_whole_at_80_columns(server: ServerHandle, scrawn: Scrawn) -> None:
    long_id = "evt-" + "x" * 32  # a client's own event id (36 characters, like a uuid)
    store_events(server, ("a-user-with-a-long-name", "2.5", long_id), ("bob", "1", None))
    tail = scrawn("events", "tail")
    assert tail.code == 0 and any(line.split()[1] == long_id for line in tail.out.splitlines())
    [_, bob] = [json.loads(line) for line in scrawn("events", "tail", "--json").out.splitlines()]
    assert bob["event_id"] in tail.out
    listed = scrawn("keys", "list")
    for key in scrawn("keys", "list", "--json").json():
        assert key["id"] in listed.out
    assert "created" in scrawn("keys", "list", "--wide").out  # every column
    # Webhook messages and model price overrides: their ids whole too, beside long URLs and model names.
    scrawn("webhooks", "set-endpoint", "https://hooks.example.com/" + "a-long-path/" * 4)
    run_async(queue_message(server, "a-user-with-a-long-name"))
    messages = scrawn("webhooks", "list")
    assert scrawn("webhooks", "list", "--json").json()[0]["id"] in messages.out
    override = scrawn(
        "prices", "set", "a-model-with-a-long-name-" + "x" * 30, "--input", "1", "--json"
    ).json()
    assert override["id"] in scrawn("prices", "list", "--search", "a-model-with").out


def test_id_prefixes_resolve_and_ambiguous_ones_are_refused(server: ServerHandle, scrawn: Scrawn) -> None:
    store_events(
        server,
        ("u", "1", "evt-shared-0001"),
        ("u", "2", "evt-shared-0002"),
        ("u", "3", "evt-shared-00022"),
        ("u", "4", "Evt%shared-x"),
        ("u", "5", "aaaaaaaa-0000-4000-8000-000000000001"),
    )
    assert scrawn("explain", "evt-shared-0001", "--json").json()["event"]["debit"] == "1"
    # The whole id wins over the longer id it starts.
    assert scrawn("explain", "evt-shared-0002", "--json").json()["event"]["debit"] == "2"
    assert scrawn("explain", "evt-shared-00022", "--json").json()["event"]["debit"] == "3"
    one_line_error(scrawn("explain", "evt-shared-"), "ambiguous", "evt-shared-0001", "evt-shared-0002")
    one_line_error(scrawn("explain", "evt-sha"), "not found")  # too short for a prefix
    one_line_error(scrawn("explain", "EVT-SHARED-0001"), "not found")  # exact, whatever the database's LIKE
    one_line_error(scrawn("explain", "evt_shared-0001"), "not found")  # _ and % are not wildcards
    assert scrawn("explain", "Evt%shar", "--json").json()["event"]["debit"] == "4"
    done = scrawn("events", "void", "aaaaaaaa-0000", "--reason", "test", "--json").json()
    assert done["event_id"] == "aaaaaaaa-0000-4000-8000-000000000001" and done["amount"] == "5"

    [key] = [k for k in scrawn("keys", "list", "--json").json() if k["role"] == "test"]
    assert scrawn("keys", "revoke", key["id"][:8], "--json").json()["id"] == key["id"]
    one_line_error(scrawn("keys", "revoke", "no-such-key-id"), "not found")

    second = scrawn("init", "--name", "second", "--json").json()["project_id"]
    one_line_error(scrawn("keys", "list"), "several projects: pass --project")
    assert scrawn("keys", "list", "--project", second[:8], "--json").json()[0]["name"] == "initial"
    one_line_error(scrawn("keys", "list", "--project", second[:4]), "8 characters")
    one_line_error(scrawn("keys", "list", "--project", "nope-nope-nope"), "project not found")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("users", "--mode", "bogus"), "--mode"),
        (("events", "tail", "--mode", "prod"), "--mode"),
        (("keys", "create", "--name", "k", "--expires-in", "10"), "--expires-in"),
        (("keys", "create", "--name", "k", "--expires-in", "59s"), "--expires-in"),
        (("keys", "create", "--name", "k", "--expires-in", "soon"), "--expires-in"),
        (("keys", "create", "--name", "k", "--expires-in", "400d"), "--expires-in"),
        (("keys", "create", "--name", "k", "--role", "admin"), "--role"),
        (("webhooks", "list", "--status", "lost"), "--status"),
        (("usage", "series", "--bucket", "week"), "--bucket"),
        (("usage", "summary", "--context", "both"), "--context"),
    ],
)
def test_bad_option_values_are_usage_errors(scrawn: Scrawn, args: tuple[str, ...], option: str) -> None:
    done = scrawn(*args)
    assert done.code == 2 and option in done.err and "Traceback" not in done.err, done.err


def test_key_expiry_durations_and_expired_keys(server: ServerHandle, scrawn: Scrawn) -> None:
    made = scrawn("keys", "create", "--name", "hour", "--expires-in", "90m", "--json").json()
    assert made["key"].startswith("scrn_live_") and made["status"] == "active"
    assert made["expires_at"] > made["created_at"]

    async def insert_expired() -> None:
        db = server.db()
        try:
            async with db.write() as conn:
                at = now_ms() - 3_600_000
                record = KeyRecord(
                    project_id=server.project_id,
                    id="old-key",
                    role="live",
                    name="old",
                    display="scrn_live_old…",
                    created_at=at,
                    expires_at=at + 60_000,
                    revoked_at=None,
                    last_used_at=None,
                )
                await keys.insert(conn, record, "digest-of-old-key")
        finally:
            await db.dispose()

    run_async(insert_expired())
    status = {k["name"]: k["status"] for k in scrawn("keys", "list", "--json").json()}
    assert status["old"] == "expired" and status["hour"] == "active"
    assert "expired" in scrawn("keys", "list").out
    scrawn("keys", "revoke", "old-key")
    assert {k["name"]: k["status"] for k in scrawn("keys", "list", "--json").json()}["old"] == "revoked"


def test_init_twice_reuses_the_project(server: ServerHandle, scrawn: Scrawn) -> None:
    first = scrawn("init", "--name", "acme", "--json").json()
    assert first["created"] and first["dash_key"].startswith("scrn_dash_")
    again = scrawn("init", "--name", "acme", "--json").json()
    assert again == {"project_id": first["project_id"], "name": "acme", "created": False, "dash_key": None}
    text = scrawn("init", "--name", "acme")
    assert text.code == 0 and "exists already" in text.out and "scrn_dash_" not in text.out
    other = scrawn("init", "--name", "acme", "--new", "--json").json()
    assert other["created"] and other["project_id"] != first["project_id"]
    names = [p["name"] for p in scrawn("projects", "list", "--json").json()]
    assert sorted(names) == ["acme", "acme", "test"]


def rows_of(server: ServerHandle, project_id: str) -> dict[str, int]:
    """Rows of the project in every table that has a project (``projects`` by its id)."""

    async def count() -> dict[str, int]:
        db = server.db()
        try:
            async with db.read() as conn:
                found = {}
                for table in metadata.sorted_tables:
                    column = table.c.id if table.name == "projects" else table.columns.get("project_id")
                    if column is not None:
                        counted = select(func.count()).select_from(table).where(column == project_id)
                        found[table.name] = int(await conn.scalar(counted) or 0)
                return found
        finally:
            await db.dispose()

    counted: dict[str, int] = run_async(count())
    return counted


def test_projects_rename_and_delete(server: ServerHandle, scrawn: Scrawn) -> None:
    project = server.project_id
    renamed = scrawn("projects", "rename", project[:8], "Acme Inc", "--json").json()
    assert renamed["id"] == project and renamed["name"] == "Acme Inc"
    one_line_error(scrawn("projects", "rename", project, " "), "--name")

    # An empty project (keys and prices, no money) goes at once, and nothing of it stays anywhere.
    spare = scrawn("init", "--name", "spare", "--json").json()["project_id"]
    assert scrawn("tags", "set", "T", "1", "--project", spare).code == 0
    gone = scrawn("projects", "delete", spare, "--json").json()
    assert gone["id"] == spare and gone["deleted"]["keys"] == 1 and gone["deleted"]["pricing"] == 1
    assert not any(rows_of(server, spare).values())
    one_line_error(scrawn("projects", "delete", spare), "project not found")

    # Money on the ledger: refused (nothing deleted) unless --force.
    store_events(server, ("alice", "3", None))
    assert scrawn("wallets", "credit", "bob", "5", "--key", "c1").code == 0
    before = rows_of(server, project)
    one_line_error(scrawn("projects", "delete", project), "money on its ledger", "--force")
    assert rows_of(server, project) == before
    forced = scrawn("projects", "delete", project, "--force", "--json").json()
    assert forced["deleted"]["ledger"] >= 4 and forced["deleted"]["events"] == 1
    assert not any(rows_of(server, project).values())
    assert scrawn("projects", "list", "--json").json() == []


def test_explain_shows_prices_tokens_and_the_ledger_entry(server: ServerHandle, scrawn: Scrawn) -> None:
    store_events(server, ("alice", "0.75", "evt-explain-1"))
    text = scrawn("explain", "evt-explain-1")
    assert (
        text.code == 0
        and "charged 0.75" in text.out
        and "ledger entry" in text.out
        and "usage -0.75" in text.out
    )
    assert '"amount": "0.75"' in text.out
    assert Decimal(scrawn("explain", "evt-explain-1", "--json").json()["ledger_entry"]["amount"]) == Decimal(
        "-0.75"
    )


def test_json_of_the_commands_that_change_things(server: ServerHandle, scrawn: Scrawn) -> None:
    """The rest of the data commands: each answers one JSON object, and ids printed by one feed another
    as prefixes (a webhook message, a model price override)."""
    assert scrawn("tags", "set", "CALL", "0.5", "--json").json()["version"] == 1
    assert scrawn("tags", "delete", "CALL", "--json").json()["deleted"] == "CALL"
    assert scrawn("expressions", "set", "ONE", "1", "--json").json()["name"] == "ONE"
    assert scrawn("expressions", "delete", "ONE", "--json").json()["deleted"] == "ONE"
    changed = scrawn("projects", "set", "--late-window", "30", "--json").json()
    assert changed["id"] == server.project_id and changed["late_window_days"] == 30
    stripe = ("--provider", "stripe", "--api-key", "sk_test_abcdef123456", "--webhook-secret", "whsec_x")
    configured = scrawn("payments", "configure", *stripe, "--json").json()
    assert configured["provider"] == "stripe" and configured["webhook_secret"] == "set"
    assert "sk_test_abcdef123456" not in json.dumps(configured)
    assert scrawn("payments", "show", "--json").json() == configured
    assert scrawn("payments", "remove", "--json").json() == {"removed": True}
    one_line_error(scrawn("payments", "show", "--json"), "No payment provider is configured")
    credited = scrawn("wallets", "credit", "carol", "5", "--key", "c1", "--json").json()
    assert credited["amount"] == "5" and credited["available"] == "5"
    assert scrawn("wallets", "debit", "carol", "1.5", "--key", "d1", "--json").json()["amount"] == "-1.5"
    settings = scrawn("wallets", "settings", "carol", "--spend-cap", "3", "--json").json()
    assert settings["spend_cap"] == "3"

    override = scrawn("prices", "set", "my-model", "--input", "1.5", "--json").json()
    assert scrawn("prices", "delete", override["id"][:8], "--json").json() == {"deleted": override["id"]}
    scrawn("webhooks", "set-endpoint", "https://example.com/hook")

    run_async(queue_message(server, "carol"))
    [message] = scrawn("webhooks", "list", "--json").json()
    assert scrawn("webhooks", "attempts", message["id"][:8], "--json").json() == []
    assert scrawn("webhooks", "replay", message["id"][:12], "--json").json()["id"] == message["id"]
