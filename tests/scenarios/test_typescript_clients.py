"""The TypeScript-ecosystem clients the Scrawn TS SDK is built on (grpc-js + proto-loader; connect-node's
gRPC, Connect binary/JSON and gRPC-web transports) against a real ``scrawn serve``, on SQLite and PostgreSQL.

``tests/ts/client.mjs`` makes the calls and prints what the wire said; this test checks it and then reads the
database to prove the events were really stored and priced. Needs Node ≥ 20 and ``npm ci --prefix tests/ts``:
without them the test skips, or fails when ``SCRAWN_REQUIRE_POSTGRES=1`` (CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrawn.server.db.schema import events, ledger_entries
from tests.conftest import run_async

ROOT = Path(__file__).resolve().parents[2]
TS_DIR = ROOT / "tests" / "ts"
PROTO_DIR = ROOT / "proto"
PROTOCOLS = ["grpc-js", "connect-grpc", "connect-binary", "connect-json", "connect-grpcweb"]
BAD_KEY_ERROR = {"code": "UNAUTHENTICATED", "message": "Invalid API key: API key not found"}
BAD_PREFIX_ERROR = {
    "code": "UNAUTHENTICATED",
    "message": "Invalid API key: Invalid key prefix — expected scrn_dash_, scrn_live_, or scrn_test_",
}
# Per protocol: RegisterEvent amount 5; stream: basic amount 2 + AI 1234 × 0.001 + 567 × 0.002 = 2.368.
AI_DEBIT = Decimal("1.234") + Decimal("1.134")
USER_DEBIT = Decimal(5) + Decimal(2) + AI_DEBIT


@pytest.fixture(scope="module")
def descriptor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FileDescriptorSet of event.proto, made by protoc, for connect-node's runtime schemas (no codegen)."""
    out = tmp_path_factory.mktemp("proto") / "event.binpb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(PROTO_DIR / "event" / "v1" / "event.proto"),
        ],
        check=True,
        capture_output=True,
    )
    return out


def run_client(node: str, descriptor: Path, server) -> dict:
    env = os.environ | {
        "SCRAWN_URL": server.base_url,
        "SCRAWN_TARGET": server.grpc_target,
        "SCRAWN_KEY": server.live_key,
        "SCRAWN_PROTO_DIR": str(PROTO_DIR),
        "SCRAWN_DESCRIPTOR": str(descriptor),
    }
    proc = subprocess.run(
        [node, str(TS_DIR / "client.mjs")], env=env, capture_output=True, text=True, timeout=240, cwd=TS_DIR
    )
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\nlog:\n{server.log()}"
    assert proc.returncode == 0, detail
    lines = proc.stdout.strip().splitlines()
    assert lines, detail
    return json.loads(lines[-1])


def test_typescript_clients_register_and_stream(node: str, descriptor: Path, server) -> None:
    result = run_client(node, descriptor, server)
    assert result["ok"] is True
    assert sorted(result["protocols"]) == sorted(PROTOCOLS)
    stored: dict[str, str] = {}  # event id → protocol
    for protocol in PROTOCOLS:
        out = result["protocols"][protocol]
        user = f"ts-{protocol}-user"
        assert out["errors"] == [], protocol
        assert out["user"] == user

        reg = out["register"]
        assert reg["message"] == "Event stored successfully", protocol
        assert reg["userId"] == user
        assert len(reg["eventId"]) == 36 and reg["eventId"].count("-") == 4, reg  # a server-made UUID
        assert reg["idempotencyKey"], reg  # generated when absent
        assert reg["duplicate"] is False
        assert int(reg["ingestedTimestamp"]) > 1_600_000_000_000  # Unix ms
        stored[reg["eventId"]] = protocol

        stream = out["stream"]
        assert (stream["eventsProcessed"], stream["eventsFailed"], stream["duplicates"]) == (3, 1, 0), stream
        assert stream["message"] == "Processed 3 events (2 succeeded, 1 failed)", stream
        [failure] = stream["failures"]
        assert failure["eventIndex"] == 2, failure
        assert failure["errorCode"] == "VALIDATION_FAILED", failure
        assert failure["idempotencyKey"] == f"ts-{protocol}-invalid", failure
        assert "userId" in failure["message"], failure

        assert out["badKeyRegister"] == BAD_KEY_ERROR, protocol
        assert out["badKeyStream"] == BAD_KEY_ERROR, protocol
        assert out["badPrefixRegister"] == BAD_PREFIX_ERROR, protocol

    rows, ledger = run_async(_stored(server))
    by_user: dict[str, list[dict]] = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    # Three events per protocol (register + 2 valid stream items), none from the bad-key or invalid calls.
    assert sorted(by_user) == sorted(f"ts-{p}-user" for p in PROTOCOLS), sorted(by_user)
    for protocol in PROTOCOLS:
        user_rows = by_user[f"ts-{protocol}-user"]
        assert len(user_rows) == 3, (protocol, user_rows)
        assert sum(r["debit"] for r in user_rows) == USER_DEBIT, (protocol, user_rows)
        keys = {r["idempotency_key"] for r in user_rows}
        assert {f"ts-{protocol}-basic", f"ts-{protocol}-ai"} <= keys
        [ai] = [r for r in user_rows if r["event_type"] == "AI_TOKEN_USAGE"]
        assert (ai["model"], ai["provider"], ai["input_tokens"], ai["output_tokens"]) == (
            "gpt-4o-mini",
            "openai",
            1234,
            567,
        )
        assert (ai["input_debit"], ai["output_debit"], ai["debit"]) == (
            Decimal("1.234"),
            Decimal("1.134"),
            AI_DEBIT,
        ), ai
        [basic] = [r for r in user_rows if r["idempotency_key"] == f"ts-{protocol}-basic"]
        assert (basic["event_type"], basic["basic_usage_type"], basic["debit"]) == (
            "BASIC_USAGE",
            "MIDDLEWARE_CALL",
            Decimal(2),
        ), basic
    assert {r["id"] for r in rows} >= set(stored)
    assert len(rows) == 3 * len(PROTOCOLS)
    assert sum(r["debit"] for r in rows) == USER_DEBIT * len(PROTOCOLS)
    # Every stored event has its one usage debit on the ledger (negative).
    assert ledger == {"count": len(rows), "total": -USER_DEBIT * len(PROTOCOLS)}, ledger


async def _stored(server) -> tuple[list[dict], dict]:
    db = server.db()
    try:
        async with db.read() as conn:
            rows = (
                (
                    await conn.execute(
                        select(events).where(
                            events.c.project_id == server.project_id, events.c.mode == "live"
                        )
                    )
                )
                .mappings()
                .all()
            )
            count, total = (
                await conn.execute(
                    select(func.count(), func.sum(ledger_entries.c.amount)).where(
                        ledger_entries.c.project_id == server.project_id,
                        ledger_entries.c.mode == "live",
                        ledger_entries.c.kind == "usage",
                    )
                )
            ).one()
        return [dict(r) for r in rows], {"count": count, "total": total}
    finally:
        await db.dispose()
