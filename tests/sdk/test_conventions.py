"""The conventions users bring from openai-python and stripe-python: ``http_client=`` (a proxy, a custom
transport; never closed by the SDK), ``Retry-After`` honoured on RESOURCE_EXHAUSTED / UNAVAILABLE, and
``scrawn.__version__`` — against a real ``scrawn serve`` behind real loopback servers."""

from __future__ import annotations

import asyncio
import email.utils
import importlib.metadata
import json
import math
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import scrawn
from scrawn import AsyncScrawn, Scrawn
from scrawn._connect import FLAG_END_STREAM, envelope, parse_retry_after, parse_stream, retry_after_from
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._retry import RETRY_AFTER_MAX, retry_delay
from scrawn._version import FALLBACK
from scrawn.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    ResourceExhaustedError,
    UnavailableError,
    ValidationError,
)
from tests.conftest import ServerHandle
from tests.sdk.conftest import LIVE_SHAPED_KEY, FlakyServer, client_config, stored_events

ROOT = Path(__file__).resolve().parents[2]
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}  # without Retry-After a retry would follow at once


# ------------------------------------------------------------------------------------ a forward proxy


@dataclass
class ForwardProxy:
    """A loopback HTTP forward proxy (stdlib ``http.server``): httpx sends ``POST http://host/path`` to it
    (absolute form) and it forwards the request there, recording the URLs it carried."""

    urls: list[str] = field(default_factory=list)
    url: str = ""
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.urls.append(self.path)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "proxy-connection", "connection")
                }
                res = httpx.request(self.command, self.path, content=body, headers=headers, timeout=30)
                self.send_response(res.status_code)
                for name in ("content-type", "retry-after"):
                    if name in res.headers:
                        self.send_header(name, res.headers[name])
                self.send_header("content-length", str(len(res.content)))
                self.end_headers()
                self.wfile.write(res.content)

            do_POST = _relay
            do_GET = _relay

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def paths(self) -> list[str]:
        return [httpx.URL(u).path for u in self.urls]


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class CountingTransport(httpx.HTTPTransport):
    """A custom transport, as users plug in for instrumentation: counts the requests it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return super().handle_request(request)


# ------------------------------------------------------------------------------------------ http_client


def test_http_client_carries_every_call_through_a_proxy_and_stays_open(
    module_server: ServerHandle, proxy: ForwardProxy
) -> None:
    user = f"proxy-{uuid.uuid4().hex}"
    http = httpx.Client(proxy=proxy.url)
    with Scrawn(module_server.live_key, module_server.base_url, http_client=http) as client:
        client.basic_usage_event_consumer(user_id=user, debit=2)
        assert client.track(user_id=user, debit=3)  # the background thread shares the same client
        assert client.flush(timeout=30)
    assert not http.is_closed  # the caller's client: never closed by the SDK
    assert http.get(f"{module_server.base_url}/healthz").status_code == 200
    http.close()
    paths = proxy.paths()
    assert "/event.v1.EventService/RegisterEvent" in paths
    assert "/event.v1.EventService/StreamEvents" in paths
    assert all(u.startswith(module_server.base_url) for u in proxy.urls)
    assert sorted(r.debit for r in stored_events(module_server, user_prefix=user)) == [2, 3]


def test_http_client_with_a_custom_transport(module_server: ServerHandle) -> None:
    user = f"transport-{uuid.uuid4().hex}"
    transport = CountingTransport()
    with (
        httpx.Client(transport=transport) as http,
        Scrawn(module_server.live_key, module_server.base_url, http_client=http) as client,
    ):
        client.basic_usage_event_consumer(user_id=user, debit=1)
        client.wallet.balance(user)
    assert transport.count == 2
    assert [r.debit for r in stored_events(module_server, user_prefix=user)] == [1]


async def test_async_http_client_and_the_worker_client(
    module_server: ServerHandle, proxy: ForwardProxy
) -> None:
    user = f"aproxy-{uuid.uuid4().hex}"
    http = httpx.AsyncClient(proxy=proxy.url)
    worker = httpx.Client(proxy=proxy.url)
    client = AsyncScrawn(
        module_server.live_key, module_server.base_url, http_client=http, sync_http_client=worker
    )
    await client.basic_usage_event_consumer(user_id=user, debit=4)
    assert client.track(user_id=user, debit=5)
    assert await client.close(timeout=30)
    assert not http.is_closed and not worker.is_closed
    await http.aclose()
    await asyncio.to_thread(worker.close)
    assert proxy.paths().count("/event.v1.EventService/RegisterEvent") == 1
    assert proxy.paths().count("/event.v1.EventService/StreamEvents") == 1
    rows = await asyncio.to_thread(stored_events, module_server, user_prefix=user)
    assert sorted(r.debit for r in rows) == [4, 5]


async def test_async_worker_without_a_sync_client_makes_its_own(
    module_server: ServerHandle, proxy: ForwardProxy
) -> None:
    """The background thread cannot use an AsyncClient: without ``sync_http_client`` it makes its own
    httpx.Client (which follows HTTP(S)_PROXY from the environment, not the AsyncClient's proxy)."""
    user = f"aown-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(proxy=proxy.url) as http:
        client = AsyncScrawn(module_server.live_key, module_server.base_url, http_client=http)
        await client.basic_usage_event_consumer(user_id=user, debit=6)
        assert client.track(user_id=user, debit=7)
        assert await client.close(timeout=30)
        assert not http.is_closed
    assert proxy.paths() == ["/event.v1.EventService/RegisterEvent"]
    rows = await asyncio.to_thread(stored_events, module_server, user_prefix=user)
    assert sorted(r.debit for r in rows) == [6, 7]


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (lambda: Scrawn(LIVE_SHAPED_KEY, http_client=httpx.AsyncClient()), "http_client", "AsyncScrawn"),
        (lambda: Scrawn(LIVE_SHAPED_KEY, http_client="http://proxy:3128"), "http_client", "httpx.Client"),
        (lambda: AsyncScrawn(LIVE_SHAPED_KEY, http_client=httpx.Client()), "http_client", "scrawn.Scrawn"),
        (
            lambda: AsyncScrawn(LIVE_SHAPED_KEY, sync_http_client=httpx.AsyncClient()),
            "sync_http_client",
            "httpx.Client",
        ),
    ],
)
def test_a_wrong_http_client_is_refused_naming_the_option(make: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_closed_http_client_is_refused() -> None:
    http = httpx.Client()
    http.close()
    with pytest.raises(ValidationError, match="http_client: is closed"):
        Scrawn(LIVE_SHAPED_KEY, http_client=http)


# ------------------------------------------------------------------------------------------ Retry-After


def test_retry_after_seconds_delays_the_retry(module_server: ServerHandle, flaky: FlakyServer) -> None:
    user = f"ra-{uuid.uuid4().hex}"
    flaky.script = ["unavailable"]
    flaky.error_headers = {"retry-after": "1"}
    with Scrawn(module_server.live_key, flaky.url, **FAST) as client:
        result = client.basic_usage_event_consumer(user_id=user, debit=8)
    assert len(flaky.attempts) == 2 and not result.duplicate
    assert flaky.attempts[1].at - flaky.attempts[0].at >= 0.99
    assert [r.debit for r in stored_events(module_server, user_prefix=user)] == [8]


def test_retry_after_http_date_on_resource_exhausted(module_server: ServerHandle, flaky: FlakyServer) -> None:
    user = f"radate-{uuid.uuid4().hex}"
    target = math.floor(time.time()) + 3  # an HTTP-date has whole seconds
    flaky.script = ["resource_exhausted"]
    flaky.error_headers = {"retry-after": email.utils.formatdate(target, usegmt=True)}
    with Scrawn(module_server.live_key, flaky.url, **FAST) as client:
        client.create_event(type="doc.page", customer_ref=user, units=2)
    assert len(flaky.attempts) == 2
    assert flaky.attempts[1].wall >= target - 0.01  # not before the time the server named


async def test_retry_after_async(module_server: ServerHandle, flaky: FlakyServer) -> None:
    user = f"raasync-{uuid.uuid4().hex}"
    flaky.script = ["resource_exhausted"]
    flaky.error_headers = {"retry-after": "1"}
    async with AsyncScrawn(module_server.live_key, flaky.url, **FAST) as client:
        await client.basic_usage_event_consumer(user_id=user, debit="2.5")
    assert len(flaky.attempts) == 2
    assert flaky.attempts[1].at - flaky.attempts[0].at >= 0.99


def test_track_worker_waits_for_retry_after(module_server: ServerHandle, flaky: FlakyServer) -> None:
    user = f"ratrack-{uuid.uuid4().hex}"
    flaky.script = ["unavailable"]
    flaky.error_headers = {"retry-after": "1"}
    with Scrawn(module_server.live_key, flaky.url, flush_interval=0.05, **FAST) as client:
        assert client.track(user_id=user, debit=3)
        assert client.flush(timeout=30)
    sent = [a for a in flaky.attempts if a.path.endswith("/StreamEvents")]
    assert len(sent) == 2 and sent[1].at - sent[0].at >= 0.99
    assert [r.debit for r in stored_events(module_server, user_prefix=user)] == [3]


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = 1_700_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    for bad in ("", "-1", "soon", "1e3", "Wed, 99 Foo 2015 07:28:00 GMT"):
        assert parse_retry_after(bad) is None, bad


def test_retry_after_sources() -> None:
    assert retry_after_from({"retry-after": "7"}) == 7.0
    assert retry_after_from({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_from({"retry-after": "garbage"}) is None
    assert retry_after_from({}, {"Retry-After": ["4"]}) == 4.0  # Connect end-of-stream metadata
    # A streaming call's error in its end-of-stream message, with the wait in the trailers.
    end = {"error": {"code": "unavailable", "message": "busy"}, "metadata": {"retry-after": ["3"]}}
    body = envelope(json.dumps(end).encode(), FLAG_END_STREAM)
    with pytest.raises(UnavailableError) as caught:
        parse_stream(200, {"content-type": "application/connect+proto"}, body, ev.StreamEventResponse)
    assert caught.value.retry_after == 3.0


def test_retry_delay_honours_and_caps_retry_after() -> None:
    config = client_config(LIVE_SHAPED_KEY, None, timeout=1.0, max_retries=3, on_error=None, **FAST)

    def error(cls: type[Any], after: float | None) -> Any:
        made = cls("x")
        made.retry_after = after
        return made

    assert retry_delay(config, error(UnavailableError, 5), 0) == 5  # >= jittered backoff (<= 0.05)
    assert retry_delay(config, error(ResourceExhaustedError, 3600), 0) == RETRY_AFTER_MAX
    for ignored in (error(UnavailableError, None), error(DeadlineExceededError, 5)):
        delay = retry_delay(config, ignored, 0)  # the jittered backoff alone
        assert delay is not None and 0 <= delay <= FAST["backoff_max"]
    assert retry_delay(config, error(InvalidArgumentError, 5), 0) is None  # not retryable at all
    assert retry_delay(config, error(UnavailableError, 5), 3) is None  # retries used up


# ---------------------------------------------------------------------------------------- __version__


def _pyproject_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_is_the_installed_distributions() -> None:
    assert scrawn.__version__ == importlib.metadata.version("scrawn") == _pyproject_version()
    assert "__version__" in scrawn.__all__


def test_version_without_an_installed_distribution_falls_back_to_pyproject() -> None:
    assert _pyproject_version() == FALLBACK
    code = (
        "import importlib.metadata as m\n"
        "def missing(name):\n"
        "    raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import scrawn\n"
        "print(scrawn.__version__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _pyproject_version()


def test_user_agent_names_the_version(module_server: ServerHandle, flaky: FlakyServer) -> None:
    with Scrawn(module_server.live_key, flaky.url) as client:
        client.wallet.balance("ua-user")
    assert flaky.attempts[0].headers["user-agent"] == f"scrawn-python/{scrawn.__version__}"
