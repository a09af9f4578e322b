"""Optional OpenTelemetry traces (docs/configuration.md#traces): with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, a
real server exports one server span per request to a real OTLP/HTTP receiver on loopback, named after the
RPC, continuing the caller's ``traceparent`` and carrying the request id."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import REGISTER, ConnectClient, bearer
from tests.conftest import make_server

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")


class Receiver(ThreadingHTTPServer):
    bodies: list[bytes]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_each_request_is_a_span(receiver: Receiver, tmp_path: Path) -> None:
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_SERVICE_NAME": "scrawn-test",
    }
    handle.start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        with ConnectClient(handle.base_url) as client:
            usage = ev.BasicUsage(amount=1)
            request = ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="u", basicUsage=usage)
            headers = [
                *bearer(handle.live_key),
                ("x-request-id", "traced-1"),
                ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),
            ]
            client.unary(REGISTER, request, headers)
    finally:
        handle.stop()  # flushes the spans still buffered
    spans = []
    for body in receiver.bodies:
        export = trace_service.ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            assert service == "scrawn-test"
            spans += [span for scope in resource.scope_spans for span in scope.spans]
    registered = [span for span in spans if span.name == "event.v1.EventService/RegisterEvent"]
    assert len(registered) == 1, [span.name for span in spans]
    span = registered[0]
    assert span.trace_id.hex() == trace_id
    assert {a.key: a.value.string_value for a in span.attributes}["scrawn.request_id"] == "traced-1"


def test_without_the_sdk_the_server_warns_and_serves(tmp_path: Path) -> None:
    """OpenTelemetry is no dependency: asked for traces without it, the server says what to install and
    serves as usual."""
    blocker = tmp_path / "blocked"
    (blocker / "opentelemetry").mkdir(parents=True)
    (blocker / "opentelemetry" / "__init__.py").write_text("raise ImportError('not installed')\n")
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "PYTHONPATH": os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH")) if p),
    }
    handle.start()
    try:
        with ConnectClient(handle.base_url) as client:
            usage = ev.BasicUsage(amount=1)
            request = ev.RegisterEventRequest(type=ev.BASIC_USAGE, userId="u", basicUsage=usage)
            assert client.unary(REGISTER, request, bearer(handle.live_key)).eventId
    finally:
        handle.stop()
    log = handle.log()
    assert "OpenTelemetry is not installed: pip install opentelemetry-sdk" in log, log[-2000:]
    assert "Traceback" not in log
