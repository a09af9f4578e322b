"""The quarantine (docs/pricing-safety.md#quarantine), against a real ``scrawn serve`` on SQLite and
PostgreSQL: a well-formed event that the project's configuration cannot price is kept (not billed, not lost),
answered FAILED_PRECONDITION / KEPT_FOR_REPRICING / ``quarantined``, and ``scrawn events reprice`` (or the
JSON API) puts it on the ledger exactly once, with its reported time. Malformed events are still refused.

Each test works in a project of its own inside one server per database, so ``reprice --all`` of one test
never touches another's events."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.sql import Select

from scrawn import Scrawn, tag
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage
from scrawn.errors import EventQuarantinedError, ScrawnError
from scrawn.server.db.engine import now_ms
from scrawn.server.db.schema import balances, event_prices, events, ledger_entries, quarantined_events
from scrawn.server.keys.service import KeyService
from scrawn.server.projects.service import create_project
from tests.clients import REGISTER, STREAM, TRACK, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import SECRET, ServerHandle, run_async

NOW = int(time.time())
KEPT = "KEPT_FOR_REPRICING"


@dataclass(frozen=True)
class Project:
    id: str
    dash: str
    live: str
    test: str


@pytest.fixture
def project(module_server: ServerHandle) -> Project:
    """A fresh project (with its own keys) in the module's server."""

    async def make() -> Project:
        db = module_server.db()
        try:
            async with db.write() as conn:
                project_id = await create_project(conn, f"q-{uuid.uuid4().hex[:8]}")
                keys = KeyService(db, SECRET)
                made = [(await keys.create_key(conn, project_id, r, r))[1] for r in ("dash", "live", "test")]
            return Project(project_id, *made)
        finally:
            await db.dispose()

    made: Project = run_async(make())
    return made


@pytest.fixture(scope="module")
def grpc_client(module_server: ServerHandle) -> Iterator[GrpcClient]:
    with GrpcClient(module_server.grpc_target) as client:
        yield client


def fetch(server: ServerHandle, stmt: Select[Any]) -> list[Any]:
    async def run() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                return list(await conn.execute(stmt))
        finally:
            await db.dispose()

    rows: list[Any] = run_async(run())
    return rows


def kept_rows(server: ServerHandle, project: Project) -> list[Any]:
    qe = quarantined_events
    return fetch(server, select(qe).where(qe.c.project_id == project.id).order_by(qe.c.received_at, qe.c.id))


def stored_events(server: ServerHandle, project: Project) -> list[Any]:
    return fetch(server, select(events).where(events.c.project_id == project.id).order_by(events.c.id))


def usage_entries(server: ServerHandle, project: Project) -> list[Decimal]:
    le = ledger_entries
    rows = fetch(server, select(le.c.amount).where(le.c.project_id == project.id, le.c.kind == "usage"))
    return [r.amount for r in rows]


def balance_of(server: ServerHandle, project: Project) -> dict[str, Decimal]:
    rows = fetch(
        server, select(balances.c.user_id, balances.c.balance).where(balances.c.project_id == project.id)
    )
    return {r.user_id: r.balance for r in rows}


def cli(server: ServerHandle, project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``scrawn events …`` in a subprocess against the server's database."""
    return subprocess.run(
        [sys.executable, "-m", "scrawn.server.cli", "events", *args, "--project", project.id],
        env=server.env | {"COLUMNS": "300"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def reprice_all(server: ServerHandle, project: Project, *extra: str) -> str:
    done = cli(server, project, "reprice", "--all", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def api(
    server: ServerHandle, key: str, method: str, path: str, *, mode: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} | ({"x-scrawn-mode": mode} if mode else {})
    return httpx.request(method, server.base_url + path, headers=headers, timeout=120, **kw)


def put_tag(server: ServerHandle, project: Project, key: str, price: str) -> None:
    res = api(server, project.dash, "POST", "/api/v1/tags", json={"key": key, "price": price})
    assert res.status_code in (200, 201), res.text


def basic(user: str, key: str, **usage_kw: Any) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(**usage_kw)
    )


def ai_item(user: str, key: str, reported: int = 0, **ai_kw: Any) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.AI_TOKEN_USAGE,
        userId=user,
        idempotencyKey=key,
        reportedTimestamp=reported,
        aiTokenUsage=ev.AITokenUsage(**ai_kw),
    )


# ------------------------------------------------------------------------------------ track() × 1,000


def test_thousand_tracked_events_are_kept_then_repriced_once(
    module_server: ServerHandle, project: Project
) -> None:
    reported: list[ScrawnError] = []
    lock = threading.Lock()

    def on_error(error: ScrawnError, _context: Any) -> None:
        with lock:
            reported.append(error)

    with Scrawn(project.live, module_server.base_url, on_error=on_error) as client:
        for i in range(1000):
            assert client.track(user_id=f"user-{i % 10}", debit=tag("MISSING"))
        assert client.flush(timeout=300) is True
        assert client.dropped_count == 0
    # delivered and reported (so the app can log it), never dropped
    assert len(reported) == 1000
    assert all(
        isinstance(e, EventQuarantinedError)
        and e.message == "Event kept for repricing: basicUsage.tag: Tag not found: MISSING"
        and e.field == "basicUsage.tag"
        for e in reported
    )

    kept = kept_rows(module_server, project)
    assert len(kept) == 1000 and {r.reason_code for r in kept} == {"tag_not_found"}
    assert all(r.repriced_at is None and r.field == "basicUsage.tag" for r in kept)
    assert stored_events(module_server, project) == [] and usage_entries(module_server, project) == []
    listed = api(module_server, project.dash, "GET", "/api/v1/quarantine", params={"limit": "5"}).json()
    assert (listed["waiting"], listed["byReason"]) == (1000, {"tag_not_found": 1000})

    put_tag(module_server, project, "MISSING", "0.123457")
    assert reprice_all(module_server, project) == "repriced 1000, still waiting 0, billed 123.457"
    entries = usage_entries(module_server, project)
    assert len(entries) == 1000 and sum(entries) == Decimal("-123.457")
    assert set(entries) == {Decimal("-0.123457")}
    assert balance_of(module_server, project) == {f"user-{k}": Decimal("-12.3457") for k in range(10)}
    stored = {r.idempotency_key: r for r in stored_events(module_server, project)}
    for row in kept:  # the kept id, key and reported time are the stored event's
        event = stored[row.idempotency_key]
        assert (event.id, event.reported_at, event.debit) == (row.id, row.reported_at, Decimal("0.123457"))
    assert all(r.repriced_at is not None for r in kept_rows(module_server, project))

    # a second run changes nothing
    assert reprice_all(module_server, project) == "repriced 0, still waiting 0, billed 0"
    assert len(usage_entries(module_server, project)) == 1000
    assert balance_of(module_server, project)["user-0"] == Decimal("-12.3457")
    shown = cli(module_server, project, "quarantine")
    assert shown.returncode == 0 and shown.stdout.splitlines()[0] == "waiting: 0", shown.stdout


def test_two_concurrent_reprice_processes_bill_once(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    items = [basic(f"race-{i % 7}", f"race-{i}", tag="RACE") for i in range(600)]
    res = grpc_client.stream(STREAM, items, bearer(project.live))
    assert (res.quarantined, res.eventsFailed) == (600, 600)
    put_tag(module_server, project, "RACE", "1.5")
    command = [
        sys.executable,
        "-m",
        "scrawn.server.cli",
        "events",
        "reprice",
        "--all",
        "--project",
        project.id,
    ]
    runs = [
        subprocess.Popen(
            command, env=module_server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    repriced = [int(out.split(",")[0].removeprefix("repriced ")) for out, _ in outputs]
    billed = [Decimal(out.strip().rsplit(" ", 1)[1]) for out, _ in outputs]
    assert (sum(repriced), sum(billed)) == (600, Decimal(900))
    entries = usage_entries(module_server, project)
    assert (len(entries), sum(entries)) == (600, Decimal(-900))
    assert len(stored_events(module_server, project)) == 600


# --------------------------------------------------------------------------- RegisterEvent idempotency


def test_retry_of_a_kept_register_event_is_a_duplicate(module_server: ServerHandle, project: Project) -> None:
    request = ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId="reg-user",
        idempotencyKey="reg-1",
        reportedTimestamp=NOW - 3600,
        basicUsage=ev.BasicUsage(tag="LATER"),
    )
    message = "Event kept for repricing: basicUsage.tag: Tag not found: LATER"
    clients = [
        GrpcClient(module_server.grpc_target),
        ConnectClient(module_server.base_url),
        ConnectClient(module_server.base_url, binary=True),
    ]
    try:
        for client in clients:  # the first keeps it; every retry, on any protocol, gets the same answer
            with pytest.raises(RpcError) as err:
                client.unary(REGISTER, request, bearer(project.live))
            assert (err.value.code, err.value.message) == ("failed_precondition", message)
    finally:
        for client in clients:
            client.close()
    [row] = kept_rows(module_server, project)
    assert (row.idempotency_key, row.reported_at, row.reason) == ("reg-1", NOW - 3600, "Tag not found: LATER")

    # the Connect error carries an event.v1.EventQuarantined detail naming the kept event
    res = httpx.post(
        module_server.base_url + REGISTER,
        content=request.SerializeToString(),
        headers={"authorization": f"Bearer {project.live}", "content-type": "application/proto"},
    )
    body = res.json()
    assert (res.status_code, body["code"], body["message"]) == (400, "failed_precondition", message)
    [detail] = [d for d in body["details"] if d["type"] == "event.v1.EventQuarantined"]
    quarantined = ev.EventQuarantined.FromString(base64.b64decode(detail["value"] + "=="))
    assert (quarantined.eventId, quarantined.idempotencyKey) == (row.id, "reg-1")
    assert (quarantined.field, quarantined.reason) == ("basicUsage.tag", "Tag not found: LATER")

    # the same key with other (also unpriceable) content is a conflict naming idempotencyKey
    other = ev.RegisterEventRequest()
    other.CopyFrom(request)
    other.userId = "someone-else"
    with GrpcClient(module_server.grpc_target) as client:
        with pytest.raises(RpcError) as conflict:
            client.unary(REGISTER, other, bearer(project.live))
        assert conflict.value.code == "already_exists" and "idempotencyKey" in conflict.value.message
        assert len(kept_rows(module_server, project)) == 1

        # once the tag exists, a retry is billed; repricing then bills the kept copy nothing more
        put_tag(module_server, project, "LATER", "2.5")
        stored = client.unary(REGISTER, request, bearer(project.live))
        assert stored.message == "Event stored successfully"
    assert reprice_all(module_server, project) == "repriced 1, still waiting 0, billed 0"
    assert usage_entries(module_server, project) == [Decimal("-2.5")]
    [event] = stored_events(module_server, project)
    assert (event.idempotency_key, event.reported_at) == ("reg-1", NOW - 3600)


# ------------------------------------------------------------------------------- malformed is refused


MALFORMED = [
    (ev.BasicUsage(amount=-1), "basicUsage.amount"),
    (ev.BasicUsage(expr="add(1,"), "basicUsage.expr"),
    (ev.BasicUsage(expr="add(tag(NOPE),"), "basicUsage.expr"),
    (ev.BasicUsage(expr="div(1, 0)"), "Division by zero"),
    (ev.BasicUsage(expr="sub(1, 2)"), "negative"),
]


def test_malformed_events_are_still_refused_and_not_kept(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    for usage_msg, named in MALFORMED:
        request = ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="bad", basicUsage=usage_msg)
        with pytest.raises(RpcError) as err:
            grpc_client.unary(REGISTER, request, bearer(project.live))
        assert err.value.code == "invalid_argument" and named in err.value.message, err.value
    # an empty user is refused even when the tag is missing too
    with pytest.raises(RpcError) as empty:
        grpc_client.unary(
            REGISTER,
            ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="", basicUsage=ev.BasicUsage(tag="NOPE")),
            bearer(project.live),
        )
    assert empty.value.code == "invalid_argument" and "userId" in empty.value.message
    items = [
        ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="bad", idempotencyKey=f"bad-{i}", basicUsage=u)
        for i, (u, _) in enumerate(MALFORMED)
    ]
    res = grpc_client.stream(STREAM, items, bearer(project.live))
    assert res.quarantined == 0 and res.eventsFailed == len(MALFORMED)
    assert all(f.errorCode != KEPT for f in res.failures)
    assert kept_rows(module_server, project) == [] and stored_events(module_server, project) == []


# ------------------------------------------------------------------- AI events, models, currency


def test_ai_events_kept_for_a_missing_tag_and_an_unknown_model(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    items = [
        ai_item(
            "ai-user",
            "ai-tag",
            model="gpt-4o",
            inputTokens=10,
            outputTokens=5,
            inputTag="AI_IN",
            outputAmount=2,
        ),
        ai_item("ai-user", "ai-model", reported=NOW - 60, model="acme-chat-9", inputTokens=3, outputTokens=2),
        ai_item(
            "ai-user", "ai-ok", model="gpt-4o", inputTokens=1, outputTokens=1, inputAmount=1, outputAmount=1
        ),
    ]
    res = grpc_client.stream(STREAM, items, bearer(project.live))
    assert (res.eventsProcessed, res.eventsFailed, res.quarantined, res.duplicates) == (3, 2, 2, 0)
    assert res.message == "Processed 3 events (1 succeeded, 2 failed)"
    failures = {f.idempotencyKey: f for f in res.failures}
    assert {k: f.errorCode for k, f in failures.items()} == {"ai-tag": KEPT, "ai-model": KEPT}
    assert (
        failures["ai-tag"].message
        == "Event kept for repricing: aiTokenUsage.inputDebit: Tag not found: AI_IN"
    )
    assert failures["ai-model"].message == (
        'Event kept for repricing: aiTokenUsage.model: unknown model "acme-chat-9"'
    )
    assert {r.idempotency_key: r.reason_code for r in kept_rows(module_server, project)} == {
        "ai-tag": "tag_not_found",
        "ai-model": "unknown_model",
    }
    # the same stream again: the kept ones answer the same, the stored one is a duplicate
    again = grpc_client.stream(STREAM, items, bearer(project.live))
    assert (again.quarantined, again.duplicates, len(kept_rows(module_server, project))) == (2, 1, 2)

    put_tag(module_server, project, "AI_IN", "0.5")
    override = {
        "model": "acme-chat-9",
        "inputPerMillion": "10000",  # $0.01 (1 cent) per token
        "outputPerMillion": "20000",
        "effectiveFrom": 0,
    }
    created = api(module_server, project.dash, "POST", "/api/v1/model-prices", json=override)
    assert created.status_code == 201, created.text
    done = api(module_server, project.dash, "POST", "/api/v1/quarantine/reprice", json={"all": True})
    assert (done.status_code, done.json()) == (200, {"repriced": 2, "waiting": 0, "amount": "9.5"})
    debits = {r.idempotency_key: r for r in stored_events(module_server, project)}
    assert (debits["ai-tag"].debit, debits["ai-tag"].input_debit, debits["ai-tag"].output_debit) == (
        Decimal("2.5"),
        Decimal("0.5"),
        Decimal(2),
    )
    assert (debits["ai-model"].debit, debits["ai-model"].reported_at) == (Decimal(7), NOW - 60)
    assert debits["ai-model"].model == "acme-chat-9" and debits["ai-model"].input_tokens == 3


def test_non_usd_project_without_a_rate_is_kept_until_the_rate_is_set(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    projects = [sys.executable, "-m", "scrawn.server.cli", "projects", "set", "--project", project.id]
    done = subprocess.run(
        [*projects, "--currency", "EUR"], env=module_server.env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tokens = {"model": "gpt-4o", "inputTokens": 12_345, "outputTokens": 678}
    res = grpc_client.stream(
        STREAM, [ai_item("eur", "eur-1", reported=NOW - 5, **tokens)], bearer(project.live)
    )
    [failure] = res.failures
    assert (res.quarantined, failure.errorCode) == (1, KEPT)
    assert failure.message.startswith(
        "Event kept for repricing: aiTokenUsage.model: the project's currency is EUR"
    )
    assert [r.reason_code for r in kept_rows(module_server, project)] == ["no_usd_rate"]
    assert reprice_all(module_server, project) == "repriced 0, still waiting 1, billed 0"
    [row] = kept_rows(module_server, project)
    assert (row.attempts, row.reason_code) == (1, "no_usd_rate") and row.last_attempt_at is not None

    done = subprocess.run(
        [*projects, "--usd-rate", "0.92"], env=module_server.env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert reprice_all(module_server, project).startswith("repriced 1, still waiting 0, billed ")
    # priced exactly as the same event sent now, with the rate set
    fresh = grpc_client.stream(
        STREAM, [ai_item("eur", "eur-2", reported=NOW - 5, **tokens)], bearer(project.live)
    )
    assert (fresh.eventsFailed, fresh.quarantined) == (0, 0)
    stored = {r.idempotency_key: r for r in stored_events(module_server, project)}
    assert stored["eur-1"].debit == stored["eur-2"].debit > 0
    assert (
        stored["eur-1"].pricing == stored["eur-2"].pricing and '"usdRate":"0.92"' in stored["eur-1"].pricing
    )


# ------------------------------------------------------------------------------ typed: TrackEvents


def test_typed_event_kept_through_track_events_and_repriced(
    module_server: ServerHandle, project: Project
) -> None:
    async def price_naming_a_missing_tag() -> None:  # as a configuration made before names were checked
        db = module_server.db()
        try:
            async with db.write() as conn:
                await conn.execute(
                    insert(event_prices).values(
                        project_id=project.id,
                        event_type="doc.page",
                        version=1,
                        expression="mul(tag(PAGE), quantity())",
                        deleted=False,
                        created_at=now_ms(),
                    )
                )
        finally:
            await db.dispose()

    run_async(price_naming_a_missing_tag())
    request = usage.TrackEventsRequest(
        events=[
            usage.TrackedEvent(
                type="doc.page", userId="typed", quantity="1.5", idempotencyKey="t1", timestamp=NOW - 7
            ),
            usage.TrackedEvent(type="free.type", userId="typed", idempotencyKey="t2"),
        ]
    )
    with ConnectClient(module_server.base_url) as client:
        first = client.unary(TRACK, request, bearer(project.live))
        assert (first.accepted, first.quarantined, first.failed, first.duplicates) == (1, 1, 0, 0)
        kept, free = first.results
        assert (kept.status, kept.errorCode, kept.idempotencyKey) == ("quarantined", KEPT, "t1")
        assert kept.message == "Event kept for repricing: type: Tag not found: PAGE" and kept.eventId
        assert (free.status, free.amount) == ("accepted", "0")
        retry = client.unary(TRACK, request, bearer(project.live))
        assert (retry.quarantined, retry.duplicates, retry.results[0].eventId) == (1, 1, kept.eventId)
        assert len(kept_rows(module_server, project)) == 1

        put_tag(module_server, project, "PAGE", "2")
        path = "/api/v1/quarantine/reprice"
        done = api(module_server, project.dash, "POST", path, json={"ids": [kept.eventId]})
        assert (done.status_code, done.json()) == (200, {"repriced": 1, "waiting": 0, "amount": "3"})
        stored = {r.idempotency_key: r for r in stored_events(module_server, project)}
        t1 = stored["t1"]
        assert (t1.id, t1.event_type, t1.name, t1.quantity, t1.debit) == (
            kept.eventId,
            "TYPED",
            "doc.page",
            "1.5",
            3,
        )
        assert t1.reported_at == NOW - 7
        # after repricing, the request's retry is a plain duplicate of the stored event
        after = client.unary(TRACK, request, bearer(project.live))
        replay = after.results[0]
        assert (replay.status, replay.eventId, replay.amount) == ("duplicate", kept.eventId, "3")
        again = api(module_server, project.dash, "POST", path, json={"ids": [kept.eventId]})
        assert again.json() == {"repriced": 0, "waiting": 0, "amount": "0"}
    assert sorted(usage_entries(module_server, project)) == [Decimal(-3), Decimal(0)]


# ------------------------------------------------------------------------------- JSON API and CLI


def test_json_api_pages_by_mode_and_refuses_bad_requests(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    test_items = [basic(f"page-{i}", f"page-{i}", tag="PAGED") for i in range(5)]
    assert grpc_client.stream(STREAM, test_items, bearer(project.test)).quarantined == 5
    live_items = [basic("live-user", f"live-{i}", tag="PAGED") for i in range(2)]
    assert grpc_client.stream(STREAM, live_items, bearer(project.live)).quarantined == 2

    live = api(module_server, project.dash, "GET", "/api/v1/quarantine").json()
    assert (live["waiting"], len(live["events"]), live["next"]) == (2, 2, None)
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"limit": "2"} | ({"after": after} if after else {})
        page = api(module_server, project.dash, "GET", "/api/v1/quarantine", mode="test", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert (body["waiting"], body["byReason"]) == (5, {"tag_not_found": 5})
        seen += [e["id"] for e in body["events"]]
        after = body["next"]
        if after is None:
            break
    expected = [r.id for r in kept_rows(module_server, project) if r.mode == "test"]
    assert seen == expected and len(set(seen)) == 5  # oldest first, none repeated or skipped
    first = api(module_server, project.dash, "GET", "/api/v1/quarantine", mode="test").json()["events"][0]
    assert (first["field"], first["reason"], first["reasonCode"], first["attempts"]) == (
        "basicUsage.tag",
        "Tag not found: PAGED",
        "tag_not_found",
        0,
    )
    assert first["userId"].startswith("page-") and first["receivedAt"].endswith("Z")

    def refused(res: httpx.Response, status: int, code: str, field: str | None) -> None:
        assert res.status_code == status, res.text
        assert (res.json()["code"], res.json()["field"]) == (code, field)

    get, post = "GET", "POST"
    refused(
        api(module_server, project.dash, get, "/api/v1/quarantine", params={"limit": "0"}),
        400,
        "invalid_argument",
        "limit",
    )
    refused(
        api(module_server, project.dash, get, "/api/v1/quarantine", params={"after": "nope"}),
        400,
        "invalid_argument",
        "after",
    )
    reprice = "/api/v1/quarantine/reprice"
    refused(api(module_server, project.dash, post, reprice, json={}), 400, "invalid_argument", "ids")
    refused(
        api(module_server, project.dash, post, reprice, json={"all": True, "ids": seen[:1]}),
        400,
        "invalid_argument",
        "ids",
    )
    refused(
        api(module_server, project.dash, post, reprice, json={"all": "yes"}), 400, "invalid_argument", "all"
    )
    refused(
        api(module_server, project.dash, post, reprice, json={"ids": "x"}), 400, "invalid_argument", "ids"
    )
    refused(api(module_server, project.dash, post, reprice, json={"ids": ["nope"]}), 404, "not_found", "ids")
    # test-mode ids are not live-mode ids
    refused(api(module_server, project.dash, post, reprice, json={"ids": seen[:1]}), 404, "not_found", "ids")
    refused(api(module_server, project.live, get, "/api/v1/quarantine"), 403, "permission_denied", None)

    # still unpriceable: the attempt is counted, the event waits
    one = api(module_server, project.dash, post, reprice, mode="test", json={"ids": seen[:1]})
    assert one.json() == {"repriced": 0, "waiting": 1, "amount": "0"}
    assert (
        api(module_server, project.dash, get, "/api/v1/quarantine", mode="test").json()["events"][0][
            "attempts"
        ]
        == 1
    )

    shown = cli(module_server, project, "quarantine", "--mode", "test", "--limit", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:2] == ["waiting: 5", "  tag_not_found: 5"]
    assert seen[0] in shown.stdout and seen[1] in shown.stdout and seen[2] not in shown.stdout
    assert "Tag not found: PAGED" in shown.stdout and "basicUsage.tag" in shown.stdout
    neither = cli(module_server, project, "reprice")
    assert (
        neither.returncode != 0
        and neither.stderr.strip() == "error: give either --all or one or more event ids"
    )
    unknown = cli(module_server, project, "reprice", "no-such-id")
    assert unknown.returncode == 1 and "no kept event with id no-such-id" in unknown.stderr
    put_tag(module_server, project, "PAGED", "1")
    # The ids `quarantine --json` prints feed `reprice`, whole or as unique prefixes.
    listed = cli(module_server, project, "quarantine", "--mode", "test", "--limit", "2", "--json")
    kept = [e["id"] for e in json.loads(listed.stdout)["events"]]
    assert kept == seen[:2], listed.stdout + listed.stderr
    by_id = cli(module_server, project, "reprice", "--mode", "test", kept[0], kept[1][:8], "--json")
    assert json.loads(by_id.stdout) == {"repriced": 2, "waiting": 0, "amount": "2"}, by_id.stderr
    assert reprice_all(module_server, project, "--mode", "test") == "repriced 3, still waiting 0, billed 3"
    assert reprice_all(module_server, project) == "repriced 2, still waiting 0, billed 2"


# -------------------------------------------------------------------------------------------- metrics


def metric(text: str, name: str, labels: str = "") -> float:
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not in /metrics")


def waiting_everywhere(server: ServerHandle) -> int:
    qe = quarantined_events
    [row] = fetch(server, select(func.count()).select_from(qe).where(qe.c.repriced_at.is_(None)))
    return int(row[0])


def test_metrics_count_kept_events_by_reason_and_how_many_wait(
    module_server: ServerHandle, project: Project, grpc_client: GrpcClient
) -> None:
    def scrape() -> str:
        res = httpx.get(module_server.base_url + "/metrics", timeout=10)
        assert res.status_code == 200
        return res.text

    before = scrape()
    tags_before = metric(before, "scrawn_events_quarantined_total", 'reason="tag_not_found"')
    models_before = metric(before, "scrawn_events_quarantined_total", 'reason="unknown_model"')
    items = [
        basic("m", "m-1", tag="METRIC"),
        basic("m", "m-2", expr="mul(tag(METRIC), 2)"),
        basic("m", "m-3", expr="expr(NO_SUCH_EXPRESSION)"),
        ai_item("m", "m-4", model="no-such-model-9000", inputTokens=1),
    ]
    assert grpc_client.stream(STREAM, items, bearer(project.live)).quarantined == 4
    assert grpc_client.stream(STREAM, items, bearer(project.live)).quarantined == 4  # retries: not counted
    after = scrape()
    assert metric(after, "scrawn_events_quarantined_total", 'reason="tag_not_found"') == tags_before + 2
    assert metric(after, "scrawn_events_quarantined_total", 'reason="unknown_model"') == models_before + 1
    assert metric(after, "scrawn_events_quarantined_total", 'reason="expression_not_found"') >= 1
    assert metric(after, "scrawn_events_quarantine_waiting") == waiting_everywhere(module_server) >= 4
    put_tag(module_server, project, "METRIC", "1")
    assert reprice_all(module_server, project) == "repriced 2, still waiting 2, billed 3"
    assert metric(scrape(), "scrawn_events_quarantine_waiting") == waiting_everywhere(module_server)
