"""Helpers for the SDK tests: reading what a real server stored and billed, managing its prices, a
closed port that proves "no network call", and a loopback Connect server that fails on command."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scrawn import Scrawn
from scrawn._config import ClientConfig, resolve_config
from scrawn.server.db.schema import balances, events
from tests.conftest import ServerHandle, free_port


@dataclass
class Stored:
    user_id: str
    idempotency_key: str
    event_id: str
    debit: Decimal
    metadata: str | None
    event_type: str
    basic_usage_type: str | None
    reported_at: int


def stored_events(server: ServerHandle, *, user_prefix: str) -> list[Stored]:
    """Every event whose user id starts with ``user_prefix`` (read straight from the database)."""

    async def read() -> list[Stored]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(
                        events.c.user_id,
                        events.c.idempotency_key,
                        events.c.id,
                        events.c.debit,
                        events.c.metadata,
                        events.c.event_type,
                        events.c.basic_usage_type,
                        events.c.reported_at,
                    ).where(events.c.user_id.startswith(user_prefix, autoescape=True))
                )
                return [Stored(*row) for row in rows]
        finally:
            await db.dispose()

    return asyncio.run(read())


def balances_of(server: ServerHandle, *, user_prefix: str) -> dict[str, Decimal]:
    async def read() -> dict[str, Decimal]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(balances.c.user_id, balances.c.balance).where(
                        balances.c.user_id.startswith(user_prefix, autoescape=True)
                    )
                )
                return {r.user_id: r.balance for r in rows}
        finally:
            await db.dispose()

    return asyncio.run(read())


def put_tag(server: ServerHandle, key: str, price: str) -> None:
    res = httpx.post(
        f"{server.base_url}/api/v1/tags",
        json={"key": key, "price": price},
        headers={"authorization": f"Bearer {server.dash_key}"},
    )
    assert res.status_code in (200, 201), res.text


def put_expression(server: ServerHandle, name: str, text: str) -> None:
    res = httpx.post(
        f"{server.base_url}/api/v1/expressions",
        json={"name": name, "expression": text},
        headers={"authorization": f"Bearer {server.dash_key}"},
    )
    assert res.status_code in (200, 201), res.text


def put_event_price(server: ServerHandle, event_type: str, text: str) -> None:
    res = httpx.post(
        f"{server.base_url}/api/v1/event-prices",
        json={"type": event_type, "expression": text},
        headers={"authorization": f"Bearer {server.dash_key}"},
    )
    assert res.status_code in (200, 201), res.text


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on: any network attempt fails with a connection error."""
    return f"http://127.0.0.1:{free_port()}"


LIVE_SHAPED_KEY = "scrn_live_" + "A" * 32  # well-formed, unknown to any server


def client_config(api_key: str | None, base_url: str | None, **options: Any) -> ClientConfig:
    """The configuration ``Scrawn(api_key, base_url, **options)`` would validate: its defaults, then
    ``options``."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(Scrawn).parameters.items()
        if p.default is not p.empty
    }
    return resolve_config({**defaults, "api_key": api_key, "base_url": base_url, **options})


# ------------------------------------------------------------------------------- a flaky loopback server


@dataclass
class Attempt:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when the server received it
    wall: float = field(default_factory=time.time)  # the same, as Unix time


@dataclass
class FlakyServer:
    """A loopback HTTP/1.1 server (stdlib ``http.server``, no httpx on the serving side) that plays
    ``script`` — one action per request — and then forwards everything to ``upstream``:

    - ``"unavailable"`` / ``"resource_exhausted"`` / ``"invalid_argument"`` / ``"permission_denied"``:
      a Connect error with that code;
    - ``"http502"``: a proxy's HTML 502 page;
    - ``"drop"``: close the connection without answering;
    - ``"slow"``: forward to upstream (so the event is stored), then answer after ``slow_seconds``;
    - ``"forward_drop"``: forward to upstream (so the call is applied), then close the connection without
      answering — a response lost on the way back;
    - ``"forward"``: forward to upstream.

    ``error_headers`` are sent with every Connect error answer (e.g. ``{"retry-after": "1"}``)."""

    upstream: str | None
    script: list[str] = field(default_factory=list)
    error_headers: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    slow_seconds: float = 1.5
    url: str = ""
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else _read_chunked(self.rfile)
                flaky.attempts.append(
                    Attempt(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                action = flaky.script.pop(0) if flaky.script else "forward"
                if action in ("unavailable", "resource_exhausted", "invalid_argument", "permission_denied"):
                    status = {
                        "unavailable": 503,
                        "resource_exhausted": 429,
                        "invalid_argument": 400,
                        "permission_denied": 403,
                    }[action]
                    message = {
                        "invalid_argument": "Event validation failed: userId: refused by the flaky server",
                        "permission_denied": "Dashboard keys cannot ingest events",
                    }.get(action, f"{action} (request id abcdef123456)")
                    self._answer(
                        status,
                        "application/json",
                        json.dumps({"code": action, "message": message}).encode(),
                        flaky.error_headers,
                    )
                elif action == "http502":
                    self._answer(502, "text/html", b"<html><body>502 Bad Gateway</body></html>")
                elif action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    res = httpx.post(
                        flaky.upstream + self.path,
                        content=body,
                        headers={
                            k: v
                            for k, v in self.headers.items()
                            if k.lower() not in ("host", "content-length", "transfer-encoding")
                        },
                        timeout=30,
                    )
                    if action == "slow":
                        time.sleep(flaky.slow_seconds)
                    if action == "forward_drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    with contextlib.suppress(OSError):  # the client may have given up waiting
                        self._answer(res.status_code, res.headers.get("content-type", ""), res.content)

            def _answer(
                self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()


def _read_chunked(rfile: Any) -> bytes:
    out = b""
    while True:
        size = int(rfile.readline().strip() or b"0", 16)
        if size == 0:
            rfile.readline()
            return out
        out += rfile.read(size)
        rfile.readline()


@pytest.fixture
def flaky(module_server: ServerHandle) -> Iterator[FlakyServer]:
    server = FlakyServer(upstream=module_server.base_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()
