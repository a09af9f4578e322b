"""The server's JSON logs (docs/configuration.md#logs) across a real server's life, on SQLite and PostgreSQL:
every line parses, every request on every protocol (gRPC, Connect JSON and binary, gRPC-web, the JSON API,
the dashboard, the portal, inbound provider webhooks) leaves exactly one access line carrying the request id
it was sent with (and echoes it back), refused calls included, and no API key is ever written."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import (
    REGISTER,
    STREAM,
    ConnectClient,
    GrpcClient,
    GrpcWebClient,
    RpcError,
    bearer,
)
from tests.conftest import ServerHandle, make_server, wait_ready
from tests.dashboard.seed import csrf_of


@pytest.fixture
def logged_server(database_url: str, tmp_path: Path) -> Iterator[ServerHandle]:
    handle = make_server(database_url, tmp_path)
    handle.env |= {"SCRAWN_LOG_LEVEL": "info", "SCRAWN_LOG_FORMAT": "json"}
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def rid() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def basic(user: str = "u") -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId=user, basicUsage=ev.BasicUsage(amount=2))


def test_one_json_access_line_per_request_on_every_protocol(logged_server: ServerHandle) -> None:
    server = logged_server
    sent: dict[str, dict[str, Any]] = {}  # request id -> what its access line must say

    def expect(request_id: str, **fields: Any) -> list[tuple[str, str]]:
        sent[request_id] = fields
        return [("x-request-id", request_id)]

    # RPCs on every protocol, accepted and refused.
    rpc_clients: list[tuple[str, Any]] = [
        ("grpc", GrpcClient(server.grpc_target)),
        ("connect", ConnectClient(server.base_url)),
        ("connect", ConnectClient(server.base_url, binary=True)),
        ("grpc-web", GrpcWebClient(server.base_url)),
    ]
    for protocol, client in rpc_clients:
        with client:
            ok = rid()
            meta = bearer(server.live_key) + expect(
                ok, protocol=protocol, rpc=REGISTER, code="ok", project=server.project_id, mode="live"
            )
            client.unary(REGISTER, basic(), meta)
            streamed = rid()
            meta = bearer(server.test_key) + expect(
                streamed, protocol=protocol, rpc=STREAM, code="ok", project=server.project_id, mode="test"
            )
            client.stream(STREAM, [ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="u")], meta)
            refused = rid()
            with pytest.raises(RpcError):
                client.unary(
                    REGISTER,
                    basic(),
                    [
                        ("authorization", "Bearer scrn_live_" + "x" * 32),
                        *expect(refused, protocol=protocol, code="unauthenticated"),
                    ],
                )

    # gRPC gives the id back in the headers and the trailers.
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            REGISTER,
            request_serializer=ev.RegisterEventRequest.SerializeToString,
            response_deserializer=ev.RegisterEventResponse.FromString,
        )
        given = rid()
        _, outcome = call.with_call(
            basic(), metadata=bearer(server.live_key) + expect(given, protocol="grpc", code="ok"), timeout=30
        )
        assert ("x-request-id", given) in outcome.initial_metadata()
        assert ("x-request-id", given) in outcome.trailing_metadata()

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        dash = {"authorization": f"Bearer {server.dash_key}"}
        # The JSON API.
        made = rid()
        answer = http.post(
            "/api/v1/tags",
            json={"key": "API_CALL", "price": "2"},
            headers=dash | dict(expect(made, route="/api/v1/tags", status=201, project=server.project_id)),
        )
        assert answer.status_code == 201 and answer.headers["x-request-id"] == made
        # A line logged inside a request carries its id too: deleting a tag that priced a recent event warns.
        with ConnectClient(server.base_url) as connect:
            tagged = ev.RegisterEventRequest(
                type=ev.BASIC_USAGE, userId="u", basicUsage=ev.BasicUsage(tag="API_CALL")
            )
            connect.unary(REGISTER, tagged, bearer(server.live_key))
        deleted = rid()
        answer = http.delete("/api/v1/tags/API_CALL", headers=dash | dict(expect(deleted, status=200)))
        assert answer.status_code == 200 and answer.json()["recentEvents"] == 1, answer.text
        denied = rid()
        assert http.get("/api/v1/tags", headers=dict(expect(denied, status=401))).status_code == 401
        # The portal: a link made through the API, its page fetched.
        link = http.post("/api/v1/payments/portal-links", json={"userId": "u"}, headers=dash).json()["url"]
        portal = rid()
        page = http.get(
            link, headers=dict(expect(portal, route="/portal/{token}", project=server.project_id))
        )
        assert page.status_code == 200
        # The dashboard: the sign-in form, the key posted in it, a page behind it.
        form = rid()
        text = http.get("/dashboard/sign-in", headers=dict(expect(form, status=200))).text
        signed = rid()
        http.post(
            "/dashboard/sign-in",
            data={"csrf": csrf_of(text), "key": server.dash_key},
            headers=dict(expect(signed, status=303, project=server.project_id)),
        )
        overview = rid()
        pricing = http.get(
            "/dashboard/live/pricing", headers=dict(expect(overview, status=200, project=server.project_id))
        )
        assert pricing.status_code == 200
        # An inbound provider webhook naming no checkout of ours.
        hook = rid()
        answer = http.post(
            "/webhooks/stripe", json={"id": "evt_1"}, headers=dict(expect(hook, route="/webhooks/stripe"))
        )
        assert answer.status_code == 404 and answer.headers["x-request-id"] == hook
        # An id that is not a sane token is replaced by one of ours.
        scrape = rid()  # probes and scrapes are logged at debug only (test_driver_lines_only_when_asked)
        assert http.get("/metrics", headers={"x-request-id": scrape}).status_code == 200
        odd = http.get("/api/v1/tags", headers={"x-request-id": "bad id\twith spaces"})
        assert odd.headers["x-request-id"] != "bad id\twith spaces"
    server.stop()

    log = server.log()
    assert "scrn_" not in log  # no key, in any request, at any level
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert lines and len(lines) == len([line for line in log.splitlines() if line.strip().startswith("{")])
    access = [line for line in lines if line.get("logger") == "scrawn.access"]
    per_id = Counter(line.get("request_id") for line in access)
    assert per_id[scrape] == 0
    for request_id, fields in sent.items():
        assert per_id[request_id] == 1, (request_id, fields, per_id[request_id])
        line = next(line for line in access if line.get("request_id") == request_id)
        for name, value in fields.items():
            assert line.get(name) == value, (request_id, name, line)
        assert isinstance(line["duration_ms"], float | int) and line["bytes_out"] >= 0
        if line.get("project"):
            assert line["key_id"] and not line["key_id"].startswith("scrn_")
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= line.keys(), line
    warned = [line for line in lines if line["logger"] == "scrawn.api" and "API_CALL" in line["event"]]
    assert [line["request_id"] for line in warned] == [deleted], warned


@pytest.mark.parametrize("sql", ["0", "1"])
def test_driver_lines_only_when_asked(tmp_path: Path, sql: str) -> None:
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.env |= {"SCRAWN_LOG_LEVEL": "debug", "SCRAWN_LOG_FORMAT": "json", "SCRAWN_LOG_SQL": sql}
    probes = {path: rid() for path in ("/healthz", "/readyz", "/metrics")}
    handle.start()
    try:
        with ConnectClient(handle.base_url) as client:
            client.unary(REGISTER, basic(), bearer(handle.live_key))
        for path, request_id in probes.items():
            assert httpx.get(handle.base_url + path, headers={"x-request-id": request_id}).status_code == 200
    finally:
        handle.stop()
    lines = [json.loads(line) for line in handle.log().splitlines() if line.startswith("{")]
    for path, request_id in probes.items():  # probes and scrapes: one line each, at debug
        [line] = [x for x in lines if x.get("request_id") == request_id and x["logger"] == "scrawn.access"]
        assert (line["logger"], line["level"], line["route"], line["status"]) == (
            "scrawn.access",
            "debug",
            path,
            200,
        )
    loggers = Counter(line["logger"] for line in lines)
    driver = sum(n for name, n in loggers.items() if name.startswith(("sqlalchemy", "aiosqlite", "alembic")))
    assert loggers["scrawn.access"] >= 1, loggers  # debug: the readiness probes' lines too
    assert (driver > 0) == (sql == "1"), loggers


def test_the_default_format_is_console_on_a_terminal_and_json_otherwise(tmp_path: Path) -> None:
    """No ``--log-format``/``SCRAWN_LOG_FORMAT``: the same server writes JSON into a file (what a container
    runtime or systemd collects) and readable lines onto a terminal."""
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.env |= {"SCRAWN_LOG_LEVEL": "info"}
    ids = {"file": rid(), "terminal": rid()}
    handle.start()  # standard error into server.log
    try:
        httpx.get(f"{handle.base_url}/api/v1/tags", headers={"x-request-id": ids["file"]})
    finally:
        handle.stop()
    [line] = [json.loads(x) for x in handle.log().splitlines() if ids["file"] in x]
    assert line["logger"] == "scrawn.access" and line["status"] == 401

    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "scrawn.server.cli", "serve"], env=handle.env, stdout=child, stderr=child
    )
    os.close(child)
    seen = bytearray()
    reader = threading.Thread(target=read_all, args=(main, seen), daemon=True)
    reader.start()
    try:
        wait_ready(handle.base_url, process)  # type: ignore[arg-type]
        httpx.get(f"{handle.base_url}/api/v1/tags", headers={"x-request-id": ids["terminal"]})
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(10)
    text = re.sub(r"\x1b\[[0-9;]*m", "", seen.decode(errors="replace"))  # the terminal gets colours
    [line] = [x for x in text.splitlines() if ids["terminal"] in x]
    assert not line.lstrip().startswith("{"), line
    assert "request" in line and "[scrawn.access]" in line and "status=401" in line, line


def read_all(fd: int, into: bytearray) -> None:
    """Drain a pty's main side until the child's side closes (EIO on Linux)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        into += chunk
    os.close(fd)
