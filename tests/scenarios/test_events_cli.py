"""``scrawn events tail|export``: the real command in a subprocess, against events stored through a real
``scrawn serve`` on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from scrawn import Scrawn
from scrawn.server.events.cli import CSV_COLUMNS
from scrawn.server.keys.service import KeyService
from scrawn.server.projects.service import create_project
from tests.conftest import SECRET, ServerHandle, run_async


def scrawn(handle: ServerHandle, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "events", *args, "--project", handle.project_id],
        env=handle.env | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def export(handle: ServerHandle, *args: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(scrawn(handle, "export", *args).stdout, newline=""))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def prefix() -> str:
    return f"ev-{uuid.uuid4().hex[:10]}-"


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture(scope="module")
def other_project_key(module_server: ServerHandle) -> str:
    """A live key of a second project in the same database (every command here passes --project)."""

    async def make() -> str:
        db = module_server.db()
        try:
            async with db.write() as conn:
                project_id = await create_project(conn, "other")
                _, key = await KeyService(db, SECRET).create_key(conn, project_id, "live", "other")
            return key
        finally:
            await db.dispose()

    key: str = run_async(make())
    return key


def test_export_round_trips_exact_values(module_server: ServerHandle, other_project_key: str) -> None:
    user = prefix() + 'Zoë 用户, "quoted"'
    metadata = {"note": 'a, "b"\nsecond line', "ü": "ñ"}
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        tiny = client.basic_usage_event_consumer(user_id=user, debit=Decimal("0.000001"), metadata=metadata)
        big = client.basic_usage_event_consumer(
            user_id=user, debit=Decimal("123456789.123456"), idempotency_key=user + "/big"
        )
        plain = client.basic_usage_event_consumer(user_id=user, debit=Decimal("1.25"))
        typed = client.create_event(
            type="doc.processed", customer_ref=user, units="2.5", product_ref="prod,1", metadata={"a": 1}
        )
    with Scrawn(module_server.test_key, module_server.base_url) as client:
        test_mode = client.basic_usage_event_consumer(user_id=user, debit=Decimal(9))
    with Scrawn(other_project_key, module_server.base_url) as client:
        other = client.basic_usage_event_consumer(user_id=user, debit=Decimal(9))

    # A page size of 2 makes the export cross pages; every event comes once, oldest first.
    rows = export(module_server, "--user", user, "--page-size", "2")
    assert [r["event_id"] for r in rows] == [tiny.event_id, big.event_id, plain.event_id, typed.event_id]
    by_id = {r["event_id"]: r for r in rows}
    assert by_id[tiny.event_id]["debit"] == "0.000001"
    assert by_id[big.event_id]["debit"] == "123456789.123456"
    assert by_id[plain.event_id]["debit"] == "1.25"
    assert by_id[big.event_id]["idempotency_key"] == user + "/big"
    assert json.loads(by_id[tiny.event_id]["metadata"]) == metadata
    assert by_id[big.event_id]["metadata"] == ""
    assert all(r["user_id"] == user for r in rows)

    first = by_id[tiny.event_id]
    assert first["event_type"] == "BASIC_USAGE" and first["ingested_at"] == iso_ms(tiny.ingested_at)
    assert datetime.fromisoformat(first["reported_at"]).tzinfo is not None
    assert first["model"] == first["input_tokens"] == first["input_debit"] == ""

    doc = by_id[typed.event_id]
    assert (doc["event_type"], doc["name"], doc["quantity"]) == ("TYPED", "doc.processed", "2.5")
    assert doc["product_ref"] == "prod,1" and json.loads(doc["metadata"]) == {"a": 1}

    # The whole mode: neither the test mode's nor the other project's events.
    everything = {r["event_id"] for r in export(module_server)}
    assert {tiny.event_id, typed.event_id} <= everything
    assert test_mode.event_id not in everything and other.event_id not in everything
    assert [r["event_id"] for r in export(module_server, "--mode", "test", "--user", user)] == [
        test_mode.event_id
    ]


def test_export_to_a_file_pages_through_millisecond_ties(module_server: ServerHandle, tmp_path: Path) -> None:
    user = prefix() + "batch"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        for i in range(7):  # delivered in batches: events of one batch share their ingestion millisecond
            assert client.track(user_id=user, debit=Decimal(i), idempotency_key=f"{user}/{i}")
        assert client.flush(30)
    out = tmp_path / "events.csv"
    done = scrawn(module_server, "export", "--user", user, "--page-size", "3", "--output", str(out))
    assert "exported 7 events" in done.stdout
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["idempotency_key"] for r in rows) == sorted(f"{user}/{i}" for i in range(7))
    assert sorted(Decimal(r["debit"]) for r in rows) == [Decimal(i) for i in range(7)]
    order = [(r["ingested_at"], r["event_id"]) for r in rows]
    assert order == sorted(order)


def test_export_from_to(module_server: ServerHandle) -> None:
    user = prefix() + "range"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        early = client.basic_usage_event_consumer(user_id=user, debit=1)
        time.sleep(0.02)
        late = client.basic_usage_event_consumer(user_id=user, debit=2)
    assert late.ingested_at > early.ingested_at

    def ids(*args: str) -> list[str]:
        return [r["event_id"] for r in export(module_server, "--user", user, *args)]

    assert ids("--from", iso_ms(late.ingested_at)) == [late.event_id]
    assert ids("--to", iso_ms(late.ingested_at)) == [early.event_id]  # --to is exclusive
    naive = iso_ms(early.ingested_at).removesuffix("Z")  # no offset: UTC
    assert ids("--from", naive, "--to", iso_ms(late.ingested_at + 1)) == [early.event_id, late.event_id]
    assert ids("--from", "2000-01-01", "--to", "2100-01-01") == [early.event_id, late.event_id]
    assert ids("--to", "2000-01-01") == []

    bad = subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "events", "export", "--from", "yesterday"],
        env=module_server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--from" in bad.stderr


def test_tail_shows_the_newest(module_server: ServerHandle) -> None:
    user = prefix() + "tail"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        made = [client.basic_usage_event_consumer(user_id=user, debit=Decimal("0.5")) for _ in range(5)]
    out = scrawn(module_server, "tail", "--user", user, "--limit", "3").stdout
    assert [e.event_id in out for e in made] == [False, False, True, True, True]
    assert out.index(made[2].event_id) < out.index(made[4].event_id)  # oldest of them first
    assert "BASIC_USAGE" in out and "0.5" in out


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_tail_follow_prints_new_events_once(module_server: ServerHandle, as_json: bool) -> None:
    user = prefix() + "follow"
    with Scrawn(module_server.live_key, module_server.base_url) as client:
        before = client.basic_usage_event_consumer(user_id=user, debit=1)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "scrawn.server.cli", "events", "tail", "--follow", "--interval", "0.2"),
            *("--user", user, "--project", module_server.project_id, *(["--json"] if as_json else [])),
        ],
        env=module_server.env | {"COLUMNS": "300"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    def wait_for(text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in seen):
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not printed; got {''.join(seen)!r}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=left))

    threading.Thread(target=pump, daemon=True).start()
    try:
        wait_for(before.event_id)
        with Scrawn(module_server.live_key, module_server.base_url) as client:
            after = [client.basic_usage_event_consumer(user_id=user, debit=2) for _ in range(2)]
        for event in after:
            wait_for(event.event_id)
        time.sleep(0.6)  # a few more polls: nothing is printed again
        while not lines.empty():
            seen.append(lines.get())
    finally:
        process.terminate()
        process.wait(timeout=30)
    out = "".join(seen)
    for event in [before, *after]:
        assert out.count(event.event_id) == 1, out
    if as_json:  # JSON Lines: every line one event, in the order stored, fit to feed back (`events explain`)
        printed = [json.loads(line) for line in seen]
        assert [e["event_id"] for e in printed] == [e.event_id for e in [before, *after]]
        assert [e["user_id"] for e in printed] == [user] * 3
        explain = [sys.executable, "-m", "scrawn.server.cli", "explain", printed[-1]["event_id"], "--json"]
        explained = subprocess.run(
            [*explain, "--project", module_server.project_id],
            env=module_server.env,
            capture_output=True,
            timeout=120,
        )
        assert json.loads(explained.stdout)["event"]["event_id"] == after[-1].event_id, explained.stderr
