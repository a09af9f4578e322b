"""RecordUsage and GetUsage against a real server (SQLite and PostgreSQL): customer usage tied to a confirmed
reservation's transaction, system usage, idempotency, paging and filters, and hostile inputs."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from scrawn._proto.usage.v1 import usage_pb2 as u
from scrawn._proto.wallet.v1 import wallet_pb2 as w
from tests.clients import USAGE, WALLET, ConnectClient, GrpcClient, RpcError, bearer
from tests.conftest import SECRET


def key() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def grpc(module_server):
    with GrpcClient(module_server.grpc_target) as c:
        yield c


@pytest.fixture
def usage(grpc, module_server):
    auth = bearer(module_server.live_key)
    return lambda method, request: grpc.unary(USAGE + method, request, auth)


@pytest.fixture
def wallet(grpc, module_server):
    auth = bearer(module_server.live_key)
    return lambda method, request: grpc.unary(WALLET + method, request, auth)


def confirmed_transaction(wallet, user: str, actual: str = "12.5") -> tuple[str, str]:
    """Credit, reserve and confirm: (transactionId, reservationId) of the capture."""
    wallet("Credit", w.CreditRequest(userId=user, amount="100", idempotencyKey=key()))
    hold = wallet(
        "CreateReservation", w.CreateReservationRequest(userId=user, amount="50", idempotencyKey=key())
    )
    done = wallet(
        "ConfirmReservation", w.ConfirmReservationRequest(reservationId=hold.id, actualAmount=actual)
    )
    return done.transactionId, hold.id


def test_customer_usage_belongs_to_a_confirmed_reservation(usage, wallet) -> None:
    transaction, reservation = confirmed_transaction(wallet, "rec-alice")
    request = u.RecordUsageRequest(
        userId="rec-alice",
        context="customer",
        transactionId=transaction,
        model="gpt-4o",
        provider="openai",
        inputTokens=12_000,
        outputTokens=800,
        cachedTokens=2_000,
        description="chat completion",
        idempotencyKey="rec-alice-1",
    )
    first = usage("RecordUsage", request)
    rec = first.record
    assert not first.duplicate
    assert (rec.userId, rec.context, rec.transactionId, rec.reservationId) == (
        "rec-alice",
        "customer",
        transaction,
        reservation,
    )
    assert (rec.model, rec.provider, rec.usageType, rec.inputTokens, rec.cachedTokens) == (
        "gpt-4o",
        "openai",
        "text",
        12_000,
        2_000,
    )
    quoted = usage(
        "CalculateCost",
        u.CalculateCostRequest(
            model="gpt-4o",
            provider="openai",
            inputTokens=12_000,
            outputTokens=800,
            cachedTokens=2_000,
            timestamp=rec.timestamp,
        ),
    ).cost
    assert rec.cost == quoted and rec.cost.source == "book"

    again = usage("RecordUsage", request)
    assert again.duplicate and again.record == rec
    changed = u.RecordUsageRequest()
    changed.CopyFrom(request)
    changed.outputTokens = 801
    with pytest.raises(RpcError) as conflict:
        usage("RecordUsage", changed)
    assert conflict.value.code == "already_exists" and "idempotencyKey" in conflict.value.message

    # several records may share one transaction (an agent's several calls)
    usage(
        "RecordUsage",
        u.RecordUsageRequest(
            userId="rec-alice",
            context="customer",
            transactionId=transaction,
            model="text-embedding-3-small",
            usageType="embedding",
            inputTokens=5000,
            idempotencyKey="rec-alice-2",
        ),
    )
    found = usage(
        "GetUsage", u.GetUsageRequest(filter=u.UsageFilter(userId="rec-alice", transactionId=transaction))
    )
    assert [r.idempotencyKey for r in found.records] == ["rec-alice-2", "rec-alice-1"]


def test_system_usage_stands_alone(usage) -> None:
    res = usage(
        "RecordUsage",
        u.RecordUsageRequest(
            context="system",
            model="whisper-1",
            usageType="audio_stt",
            audioSeconds="30.25",
            idempotencyKey="sys-1",
        ),
    ).record
    assert (res.userId, res.context, res.transactionId, res.audioSeconds) == ("", "system", "", "30.25")
    assert res.cost.audio == "0.3025" and res.cost.total == "0.3025"
    with pytest.raises(RpcError) as err:
        usage(
            "RecordUsage",
            u.RecordUsageRequest(
                context="system", transactionId=key(), model="gpt-4o", inputTokens=1, idempotencyKey=key()
            ),
        )
    assert err.value.code == "invalid_argument" and "transactionId:" in err.value.message


def test_get_usage_pages_newest_first_and_filters(usage) -> None:
    base = 1_735_689_600_000  # 2025-01-01T00:00:00Z
    for i in range(5):
        usage(
            "RecordUsage",
            u.RecordUsageRequest(
                userId="rec-pager",
                context="system",
                model="gpt-4o-mini" if i % 2 else "gpt-4o",
                inputTokens=100 * (i + 1),
                idempotencyKey=f"pager-{i}",
                timestamp=base + i * 60_000,
            ),
        )
    seen, token = [], ""
    while True:
        page = usage(
            "GetUsage", u.GetUsageRequest(filter=u.UsageFilter(userId="rec-pager"), limit=2, pageToken=token)
        )
        seen += [r.idempotencyKey for r in page.records]
        token = page.nextPageToken
        if not token:
            break
    assert seen == [f"pager-{i}" for i in (4, 3, 2, 1, 0)]

    window = u.UsageFilter(userId="rec-pager", startTime=base + 60_000, endTime=base + 3 * 60_000)
    assert [r.idempotencyKey for r in usage("GetUsage", u.GetUsageRequest(filter=window)).records] == [
        "pager-2",
        "pager-1",
    ]
    mini = usage("GetUsage", u.GetUsageRequest(filter=u.UsageFilter(userId="rec-pager", model="GPT-4o-mini")))
    assert [r.idempotencyKey for r in mini.records] == ["pager-3", "pager-1"]
    summary = usage("GetUsage", u.GetUsageRequest(filter=u.UsageFilter(userId="rec-pager"), summary=True))
    assert not summary.records and summary.summary.totals.records == 5
    assert summary.summary.totals.inputTokens == 1500


def _other_project_transaction(server) -> tuple[str, str]:
    """A second project in the same database, its live key, and a confirmed reservation there."""
    from scrawn.server.keys.service import KeyService
    from scrawn.server.projects.service import create_project

    async def make() -> str:
        db = server.db()
        try:
            async with db.write() as conn:
                project = await create_project(conn, "other")
                _, live = await KeyService(db, SECRET).create_key(conn, project, "live", "other")
            return live
        finally:
            await db.dispose()

    live = asyncio.run(make())
    with GrpcClient(server.grpc_target) as c:
        auth = bearer(live)
        transaction, _ = confirmed_transaction(lambda m, r: c.unary(WALLET + m, r, auth), "rec-bob")
    return transaction, live


def test_transactions_of_others_are_not_found(module_server, usage, wallet) -> None:
    mine, _ = confirmed_transaction(wallet, "rec-carol")
    grant = wallet(
        "Credit", w.CreditRequest(userId="rec-bob", amount="1", idempotencyKey=key())
    ).transaction.id
    bobs, _ = confirmed_transaction(wallet, "rec-bob")
    foreign, foreign_key = _other_project_transaction(module_server)

    def record(user: str, transaction: str, auth_key: str | None = None) -> None:
        request = u.RecordUsageRequest(
            userId=user,
            context="customer",
            transactionId=transaction,
            model="gpt-4o",
            inputTokens=10,
            idempotencyKey=key(),
        )
        if auth_key is None:
            usage("RecordUsage", request)
        else:
            with GrpcClient(module_server.grpc_target) as c:
                c.unary(USAGE + "RecordUsage", request, bearer(auth_key))

    for user, transaction, auth_key in [
        ("rec-bob", str(uuid.uuid4()), None),  # unknown
        ("rec-bob", mine, None),  # another user's
        ("rec-bob", grant, None),  # a ledger entry that is not a capture
        ("rec-bob", foreign, None),  # another project's
        ("rec-bob", bobs, module_server.test_key),  # the other mode's
    ]:
        with pytest.raises(RpcError) as err:
            record(user, transaction, auth_key)
        assert err.value.code == "not_found", (user, transaction)
        assert "transactionId:" in err.value.message
    record("rec-bob", bobs)  # and the right one works
    record("rec-bob", foreign, foreign_key)  # in its own project too


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"context": ""}, "context"),
        ({"context": "admin"}, "context"),
        ({"userId": ""}, "userId"),
        ({"userId": "x" * 257}, "userId"),
        ({"transactionId": ""}, "transactionId"),
        ({"transactionId": "not-a-uuid"}, "transactionId"),
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"idempotencyKey": "k" * 256}, "idempotencyKey"),
        ({"model": ""}, "model"),
        ({"model": "no-such-model-9000"}, "model"),
        ({"usageType": "image"}, "usageType"),
        ({"inputTokens": -1}, "inputTokens"),
        ({"outputTokens": -5}, "outputTokens"),
        ({"inputTokens": 10**15}, "inputTokens"),
        ({"cachedTokens": 11}, "cachedTokens"),
        ({"cacheWriteTokens": 11}, "cacheWriteTokens"),
        (
            {"usageType": "audio_stt", "model": "whisper-1", "inputTokens": 0, "audioSeconds": "NaN"},
            "audioSeconds",
        ),
        (
            {"usageType": "audio_stt", "model": "whisper-1", "inputTokens": 0, "audioSeconds": "-1"},
            "audioSeconds",
        ),
        (
            {"usageType": "audio_stt", "model": "whisper-1", "inputTokens": 0, "audioSeconds": "1e99"},
            "audioSeconds",
        ),
        (
            {"usageType": "audio_stt", "model": "whisper-1", "inputTokens": 0, "audioSeconds": "1.0001"},
            "audioSeconds",
        ),
        ({"usageType": "audio_stt", "model": "gpt-4o", "inputTokens": 0, "audioSeconds": "5"}, "model"),
        ({"description": "d" * 256}, "description"),
        ({"timestamp": -1}, "timestamp"),
        ({"timestamp": 10**15}, "timestamp"),
        ({"inputTokens": 0}, "inputTokens"),
    ],
)
def test_hostile_records_name_the_field(module_server, fields: dict, field: str) -> None:
    request = u.RecordUsageRequest(
        **{
            "userId": "rec-hostile",
            "context": "customer",
            "transactionId": str(uuid.uuid4()),
            "model": "gpt-4o",
            "inputTokens": 10,
            "idempotencyKey": key(),
            **fields,
        }
    )
    with ConnectClient(module_server.base_url) as client, pytest.raises(RpcError) as err:
        client.unary(USAGE + "RecordUsage", request, bearer(module_server.live_key))
    assert err.value.code == "invalid_argument", err.value.message
    assert f"{field}:" in err.value.message


def test_dash_keys_cannot_record_but_can_query(module_server) -> None:
    with GrpcClient(module_server.grpc_target) as c:
        dash = bearer(module_server.dash_key)
        with pytest.raises(RpcError) as err:
            c.unary(
                USAGE + "RecordUsage",
                u.RecordUsageRequest(context="system", model="gpt-4o", inputTokens=1, idempotencyKey=key()),
                dash,
            )
        assert err.value.code == "permission_denied" and "record usage" in err.value.message
        assert c.unary(USAGE + "GetUsageSummary", u.GetUsageSummaryRequest(), dash).totals.cost
        with pytest.raises(RpcError) as anon:
            c.unary(USAGE + "GetUsage", u.GetUsageRequest())
        assert anon.value.code == "unauthenticated"


@pytest.mark.parametrize(
    ("filter_", "field"),
    [
        (u.UsageFilter(context="nobody"), "filter.context"),
        (u.UsageFilter(usageType="video"), "filter.usageType"),
        (u.UsageFilter(transactionId="x"), "filter.transactionId"),
        (u.UsageFilter(startTime=-1), "filter.startTime"),
        (u.UsageFilter(startTime=10, endTime=5), "filter.endTime"),
        (u.UsageFilter(userId="x" * 300), "filter.userId"),
    ],
)
def test_bad_filters_name_the_field(usage, filter_, field: str) -> None:
    for request_ in (u.GetUsageRequest(filter=filter_), u.GetUsageSummaryRequest(filter=filter_)):
        method = "GetUsage" if isinstance(request_, u.GetUsageRequest) else "GetUsageSummary"
        with pytest.raises(RpcError) as err:
            usage(method, request_)
        assert err.value.code == "invalid_argument" and f"{field}:" in err.value.message
    for request_, name in [
        (u.GetUsageRequest(limit=501), "limit"),
        (u.GetUsageRequest(limit=-1), "limit"),
        (u.GetUsageRequest(pageToken="bogus"), "pageToken"),
    ]:
        with pytest.raises(RpcError) as err:
            usage("GetUsage", request_)
        assert err.value.code == "invalid_argument" and f"{name}:" in err.value.message


def test_cli_prices_and_usage(module_server, usage, monkeypatch) -> None:
    """`scrawn prices` and `scrawn usage` on the server's database."""
    from typer.testing import CliRunner

    from scrawn.server import cli_support
    from scrawn.server.cli import app

    monkeypatch.setattr(cli_support.console, "width", 250)  # no truncated cells

    usage(
        "RecordUsage",
        u.RecordUsageRequest(
            userId="rec-cli",
            context="system",
            model="gpt-4o",
            inputTokens=1_000_000,
            idempotencyKey="cli-1",
            timestamp=1_740_787_200_000,  # 2025-03-01T00:00:00Z
        ),
    )
    runner = CliRunner()
    db = [
        *("--database-url", module_server.database_url, "--data-dir", str(module_server.data_dir)),
        *("--project", module_server.project_id),  # another test here adds a second project
    ]
    added = runner.invoke(
        app,
        [
            "prices",
            "set",
            "cli-model",
            "--input",
            "1.5",
            "--output",
            "3",
            "--effective-from",
            "2024-01-01T00:00:00Z",
            *db,
        ],
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["prices", "list", "--search", "cli-model", *db])
    assert listed.exit_code == 0 and "1.5" in listed.output and "override" in listed.output
    bad = runner.invoke(app, ["prices", "set", "cli-model", "--input", "-1", *db])
    assert bad.exit_code == 1 and "inputPerMillion" in bad.output
    summary = runner.invoke(app, ["usage", "summary", "--user", "rec-cli", *db])
    assert summary.exit_code == 0 and "250" in summary.output  # 1M input tokens of gpt-4o: $2.50
    series = runner.invoke(
        app,
        [
            "usage",
            "series",
            "--user",
            "rec-cli",
            "--bucket",
            "month",
            "--tz",
            "Europe/Berlin",
            "--from",
            "2025-02-01",
            "--to",
            "2025-04-01",
            *db,
        ],
    )
    assert series.exit_code == 0, series.output
    assert "2025-02-01" in series.output and "2025-03-01" in series.output and "250" in series.output
    zone = runner.invoke(app, ["usage", "series", "--tz", "Mars/Olympus", *db])
    assert zone.exit_code == 1 and "timeZone" in zone.output
