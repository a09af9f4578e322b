"""Optional OpenTelemetry traces (docs/configuration.md#traces): one server span per request, exported over
OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set and the OpenTelemetry SDK is installed. Not a
dependency: without either, ``request_span`` costs one ``is None`` test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("scrawn.tracing")
_tracer: Any = None
INSTALL_HINT = "pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"


def configure() -> None:
    """Start exporting spans if asked to (the exporter reads the ``OTEL_*`` variables itself)."""
    global _tracer
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: %s", INSTALL_HINT)
        return
    service = os.environ.get("OTEL_SERVICE_NAME", "scrawn")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("scrawn.server")
    log.info("exporting traces to %s", os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"])


def shutdown() -> None:
    """Flush the spans still buffered (on the way out)."""
    if _tracer is not None:
        from opentelemetry import trace

        getattr(trace.get_tracer_provider(), "shutdown", lambda: None)()


@contextmanager
def request_span(scope: dict[str, Any], rpc: str | None) -> Iterator[Any]:
    """A server span for one request (continuing the caller's ``traceparent``), or None when off."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import propagate, trace

    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
    name = rpc.strip("/") if rpc else f"HTTP {scope.get('method')}"
    with _tracer.start_as_current_span(
        name, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER
    ) as span:
        yield span
        route = scope.get("route")
        if route is not None:
            span.update_name(f"{scope.get('method')} {route.path}")
            span.set_attribute("http.route", route.path)
