"""``scrawn demo``: a real server on a throwaway SQLite database, billed through real clients
(grpcio over HTTP/2, httpx speaking Connect JSON and binary over HTTP/1.1, and the Python SDK), ending with
the commands that run it for real."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from scrawn.money import format_amount
from scrawn.server.cli_support import in_project, run_db
from scrawn.server.config import Settings
from scrawn.server.ledger import repository as ledger_repository
from scrawn.server.projects.service import bootstrap

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo() -> None:
    with tempfile.TemporaryDirectory(prefix="scrawn-demo-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        settings = Settings(port=port, data_dir=data_dir)
        created = run_db(
            settings, lambda db: bootstrap(db, settings, "demo", only_if_empty=False), create=True
        )
        assert created is not None
        project_id, dash_key = created
        env = os.environ | {
            "SCRAWN_DATA_DIR": str(data_dir),
            "SCRAWN_PORT": str(port),
            "SCRAWN_LOG_LEVEL": "warning",
            "SCRAWN_WORKERS": "1",  # a demo's few calls need no process per CPU
        }
        env.pop("SCRAWN_DATABASE_URL", None)
        server = subprocess.Popen([sys.executable, "-m", "scrawn.server.cli", "serve"], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, server)
            console.rule(f"Scrawn demo server on {base} (SQLite in {data_dir})")
            live_key = _run(base, port, dash_key)
            _sdk(base, live_key)
            _print_balances(settings, project_id)
        finally:
            server.terminate()
            server.wait(timeout=30)
    _print_next_steps()


def _wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a busy machine can take this long to import and migrate
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the demo server exited early")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the demo server did not become ready")


def _connect_json(
    http: httpx.Client, path: str, key: str, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    res = http.post(path, json=body, headers={"authorization": f"Bearer {key}", **headers})
    res.raise_for_status()
    return dict(res.json())


def _register_binary(http: httpx.Client, key: str, content: bytes) -> str:
    """RegisterEvent over Connect binary: the answer's message."""
    res = http.post(
        "/event.v1.EventService/RegisterEvent",
        content=content,
        headers={"authorization": f"Bearer {key}", "content-type": "application/proto"},
    )
    return ev.RegisterEventResponse.FromString(res.content).message


def _run(base: str, port: int, dash_key: str) -> str:
    """Bill through the raw clients; returns the live key it made."""
    with httpx.Client(base_url=base, timeout=10) as http:
        live = _connect_json(
            http,
            "/auth.v1.AuthService/CreateAPIKey",
            dash_key,
            {"name": "demo live key", "expiresIn": 86400},
            **{"x-scrawn-role": "production"},
        )
        live_key = live["apiKey"]
        console.print(f"created live key {live['apiKeyId']} ({live_key[:14]}…)")
        for key, price in (("API_CALL", "0.5"), ("DOC_PAGE", "3")):
            http.post(
                "/api/v1/tags",
                json={"key": key, "price": price},
                headers={"authorization": f"Bearer {dash_key}"},
            ).raise_for_status()
        http.post(
            "/api/v1/expressions",
            json={"name": "DOC_WITH_FEE", "expression": "add(tag(DOC_PAGE), 10)"},
            headers={"authorization": f"Bearer {dash_key}"},
        ).raise_for_status()
        console.print("tags API_CALL = 0.5, DOC_PAGE = 3; expression DOC_WITH_FEE = add(tag(DOC_PAGE), 10)")

        table = Table("client", "user", "debit", "result")
        auth = [("authorization", f"Bearer {live_key}")]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            register = channel.unary_unary(
                "/event.v1.EventService/RegisterEvent",
                request_serializer=ev.RegisterEventRequest.SerializeToString,
                response_deserializer=ev.RegisterEventResponse.FromString,
            )
            key = str(uuid.uuid4())
            req = ev.RegisterEventRequest(
                type=ev.BASIC_USAGE, userId="alice", idempotencyKey=key, basicUsage=ev.BasicUsage(amount=25)
            )
            res = register(req, metadata=auth)
            table.add_row("grpcio (gRPC, HTTP/2)", "alice", "amount 25", res.message)
            again = register(req, metadata=auth)
            table.add_row(
                "grpcio retry, same key",
                "alice",
                "amount 25",
                f"duplicate={again.duplicate}, same id={again.eventId == res.eventId}",
            )
            stream = channel.stream_unary(
                "/event.v1.EventService/StreamEvents",
                request_serializer=ev.StreamEventRequest.SerializeToString,
                response_deserializer=ev.StreamEventResponse.FromString,
            )
            ai = ev.AITokenUsage(
                model="gpt-4o",
                provider="openai",
                inputTokens=1200,
                outputTokens=300,
                inputExpr="mul(inputTokens(), 0.00025)",
                outputExpr="mul(outputTokens(), 0.001)",
            )
            items = [
                ev.StreamEventRequest(type=ev.AI_TOKEN_USAGE, userId="carol", aiTokenUsage=ai),
                ev.StreamEventRequest(
                    type=ev.BASIC_USAGE, userId="carol", basicUsage=ev.BasicUsage(tag="API_CALL")
                ),
                ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="", basicUsage=ev.BasicUsage(amount=1)),
            ]
            summary = stream(iter(items), metadata=auth)
            table.add_row("grpcio StreamEvents", "carol", "AI tokens + tag", summary.message)
            for failure in summary.failures:
                table.add_row("", "", f"item {failure.eventIndex}", f"{failure.errorCode}: {failure.message}")

        res_json = _connect_json(
            http,
            "/event.v1.EventService/RegisterEvent",
            live_key,
            {"type": "BASIC_USAGE", "userId": "bob", "basicUsage": {"tag": "API_CALL"}},
        )
        table.add_row("httpx Connect JSON", "bob", "tag API_CALL", res_json["message"])
        binary = ev.RegisterEventRequest(
            type=ev.BASIC_USAGE, userId="bob", basicUsage=ev.BasicUsage(expr="mul(expr(DOC_WITH_FEE), 4)")
        )
        table.add_row(
            "httpx Connect binary",
            "bob",
            "expr mul(expr(DOC_WITH_FEE), 4)",
            _register_binary(http, live_key, binary.SerializeToString()),
        )
        # A TS SDK 0.0.6 request: the amount as a 32-bit float at field 2 (0.1f bills exactly 0.1).
        usage = bytes([0x08, 0x01, (2 << 3) | 5]) + struct.pack("<f", 0.1)
        legacy = bytes([0x08, 0x01, 0x12, 0x05]) + b"alice" + bytes([(4 << 3) | 2, len(usage)]) + usage
        legacy_message = _register_binary(http, live_key, legacy)
        table.add_row("legacy float32 amount", "alice", "amount 0.1f", legacy_message)
        console.print(table)

        query = q.QueryEventsRequest(
            aggregation=q.Aggregation(type=q.SUM, field="debitAmount"), group_by=q.GroupBy(field="userId")
        )
        billed = _connect_json(
            http, "/query.v1.QueryService/QueryEvents", live_key, json_format.MessageToDict(query)
        )
        totals = Table("user", "billed (minor units)", title="QueryEvents: SUM(debitAmount) by userId")
        for row in billed.get("aggRows", []):
            totals.add_row(row.get("groupValue", "-"), row["aggValue"])
        console.print(totals)
    return str(live_key)


def _sdk(base: str, live_key: str) -> None:
    """The same server through the Python SDK, as an application would call it."""
    from scrawn import Scrawn, tag

    table = Table("call", "result", title="The Python SDK: scrawn.Scrawn (Connect over httpx)")
    with Scrawn(api_key=live_key, base_url=base) as client:
        event = client.basic_usage_event_consumer(user_id="dave", debit=tag("API_CALL"))
        table.add_row(
            'basic_usage_event_consumer(user_id="dave", debit=tag("API_CALL"))', f"event {event.event_id}"
        )
        credit = client.wallet.credit("dave", 100)
        table.add_row('wallet.credit("dave", 100)', f"balance {format_amount(credit.balance.balance)}")
        debit = client.wallet.debit("dave", 5)
        table.add_row('wallet.debit("dave", 5)', f"balance {format_amount(debit.balance.balance)}")
        wallet = client.wallet.balance("dave")
        table.add_row('wallet.balance("dave")', f"available {format_amount(wallet.available)}")
    console.print(table)


def _print_next_steps() -> None:
    live = "scrn_live_…"
    call = 'from scrawn import Scrawn; print(Scrawn().basic_usage_event_consumer(user_id="user_42", debit=1))'
    console.rule("Run it for real")
    console.print(
        "1. scrawn init && scrawn keys create --name backend --role live"
        "  # ./scrawn-data: a project, its dash key, a live key\n"
        "2. scrawn serve                                                  # 127.0.0.1:8069; keep it running\n"
        f"3. SCRAWN_API_KEY={live} python -c '{call}'",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


def _print_balances(settings: Settings, project_id: str) -> None:
    balances = in_project(
        settings, project_id, lambda conn, p: ledger_repository.list_balances(conn, p, "live")
    )
    table = Table("user", "balance (minor units; negative = owed)", title="Ledger balances")
    for r in balances:
        table.add_row(r.user_id, format_amount(r.balance))
    console.print(table)
