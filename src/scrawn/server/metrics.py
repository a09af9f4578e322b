"""Prometheus metrics at ``/metrics`` (DESIGN §9, docs/configuration.md).

One registry per app, never the process-global one: tests build several apps in one process. Under
``scrawn serve --workers N`` every worker counts into files in ``PROMETHEUS_MULTIPROC_DIR`` (the supervisor
makes it) and a scrape, whichever worker answers it, reports the sum of all of them. Every label has
a bounded set of values (route templates and RPC method names, never raw paths), and nothing carries tenant
data: the endpoint exposes counts only.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from scrawn._codes import STATUSES
from scrawn.server.db.engine import Database
from scrawn.server.events.quarantine import repository as quarantine_repository
from scrawn.server.events.types import Outcome, Stored
from scrawn.server.pricing.pricer import CONFIGURATION_REASONS
from scrawn.server.webhooks import repository as webhooks_repository

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"  # the route label of every path that matches no route: unbounded paths must not become labels
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting, read when it is imported
SCRAPE_DB_TIMEOUT = 1.0  # seconds; a slow database must not hang the scrape

# gRPC status numbers → the Connect code names (the one code table), so every RPC protocol reports the same
# label values.
GRPC_CODES: dict[int, str] = {0: "ok", **{s.grpc: s.code for s in STATUSES.values()}}
CODE_NAMES = frozenset(GRPC_CODES.values())
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

Scope = dict[str, Any]
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Any, Send], Awaitable[None]]


class Metrics:
    """The app's metrics; also the group committer's observer (``flushed``/``flush_failed``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "scrawn_requests", "HTTP requests by route and result code", ("route", "code"), registry=r
        )
        self.request_duration = Histogram(
            "scrawn_request_duration_seconds",
            "Time from request start to the end of the response (whole stream for streaming calls)",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.events_ingested = Counter(
            "scrawn_events_ingested", "Events that reached storage, by outcome", ("outcome",), registry=r
        )
        self.commit_batch_size = Histogram(
            "scrawn_commit_batch_size", "Events per group-commit flush", buckets=_BATCH_BUCKETS, registry=r
        )
        self.commit_duration = Histogram(
            "scrawn_commit_duration_seconds",
            "Duration of one group-commit flush transaction",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "scrawn_webhook_outbox_pending",
            "Outbound webhook messages not yet delivered",
            registry=r,
            multiprocess_mode="mostrecent",  # read from the database at each scrape: the last reading holds
        )
        self.events_quarantined = Counter(
            "scrawn_events_quarantined",
            "Events kept in the quarantine for repricing (well-formed, not priceable by the configuration)",
            ("reason",),
            registry=r,
        )
        for reason in CONFIGURATION_REASONS:  # shown at 0 from the start: rate() needs a first sample
            self.events_quarantined.labels(reason)
        self.quarantine_waiting = Gauge(
            "scrawn_events_quarantine_waiting",
            "Kept events waiting to be repriced (every project and mode)",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.database_up = Gauge(
            "scrawn_database_up",
            "1 if the database answered the last scrape's query, else 0",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        # Bound children, so the hot path skips labels()' lock and tuple building.
        self._accepted = self.events_ingested.labels("accepted")
        self._duplicate = self.events_ingested.labels("duplicate")
        self._failed = self.events_ingested.labels("failed")
        self._by_route: dict[str, Any] = {}
        self._by_route_code: dict[tuple[str, str], Any] = {}

    # -- group commit observer -------------------------------------------------------------------------

    def flushed(self, size: int, seconds: float, outcomes: Sequence[Outcome]) -> None:
        accepted = duplicate = 0
        for o in outcomes:
            if isinstance(o, Stored):
                if o.duplicate:
                    duplicate += 1
                else:
                    accepted += 1
        self._observe_flush(size, seconds, accepted, duplicate, len(outcomes) - accepted - duplicate)

    def flush_failed(self, size: int, seconds: float) -> None:
        self._observe_flush(size, seconds, 0, 0, size)

    def _observe_flush(self, size: int, seconds: float, accepted: int, duplicate: int, failed: int) -> None:
        self.commit_batch_size.observe(size)
        self.commit_duration.observe(seconds)
        if accepted:
            self._accepted.inc(accepted)
        if duplicate:
            self._duplicate.inc(duplicate)
        if failed:
            self._failed.inc(failed)

    def quarantined(self, by_reason: Tally[str]) -> None:
        """Events newly kept in the quarantine (the event service's observer); reasons are a fixed set."""
        for reason, count in by_reason.items():
            self.events_quarantined.labels(reason).inc(count)

    # -- requests ---------------------------------------------------------------------------------------

    def observe_request(self, route: str, code: str, seconds: float) -> None:
        counter = self._by_route_code.get((route, code))
        if counter is None:
            counter = self._by_route_code[(route, code)] = self.requests.labels(route, code)
        histogram = self._by_route.get(route)
        if histogram is None:
            histogram = self._by_route[route] = self.request_duration.labels(route)
        counter.inc()
        histogram.observe(seconds)

    # -- the endpoint ------------------------------------------------------------------------------------

    def _exported(self) -> CollectorRegistry:
        """This app's registry, or with several workers every worker's samples summed."""
        if not os.environ.get(MULTIPROCESS_DIR):
            return self.registry
        every = CollectorRegistry()
        MultiProcessCollector(every)  # type: ignore[no-untyped-call]
        return every

    def endpoint(self, db: Database) -> Callable[[Request], Awaitable[Response]]:
        async def metrics(_: Request) -> Response:
            # Collectors are synchronous: take the one database reading here, then render.
            try:
                async with asyncio.timeout(SCRAPE_DB_TIMEOUT), db.read() as conn:
                    pending = await webhooks_repository.count_pending(conn)
                    waiting = await quarantine_repository.count_all_waiting(conn)
                self.outbox_pending.set(pending)
                self.quarantine_waiting.set(waiting)
                self.database_up.set(1)
            except Exception:  # the scrape still answers; the gauge keeps its last value
                self.database_up.set(0)
            return Response(generate_latest(self._exported()), media_type=CONTENT_TYPE)

        return metrics


class RpcWatch:
    """``send`` for a Connect/gRPC/gRPC-web call: notes its status code on the way through.

    gRPC: ``grpc-status`` in the trailers, or in the headers of a trailers-only response. gRPC-web: the
    trailer frame (flag 0x80) in the last body message. Connect streams: the end-of-stream frame (flag 0x02)
    in the last body message. Connect unary: 200 is ``ok``, an error is a JSON body ``{"code": …}``. A
    response that is none of these (e.g. 415 for an unsupported content type) reports its HTTP status.
    """

    __slots__ = ("_kind", "_result", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._kind = ""  # grpc | web | stream | error | "" (no body parsing needed)
        self._result = "500"  # the app raised before starting a response

    def code(self) -> str:
        return self._result

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
        elif kind == "http.response.body" and self._kind and not message.get("more_body", False):
            self._last_body(message.get("body", b""))
        elif kind == "http.response.trailers" and self._kind == "grpc":
            self._grpc_status(message.get("headers", ()))
        await self._send(message)

    def _start(self, message: Message) -> None:
        status: int = message["status"]
        self._result = str(status)
        content_type = b""
        for name, value in message.get("headers", ()):
            lower = name.lower()
            if lower == b"grpc-status":  # trailers-only: the call's status is already here
                self._kind = ""
                self._result = _grpc_name(value)
                return
            if lower == b"content-type":
                content_type = value
        if content_type.startswith(b"application/grpc-web"):
            self._kind = "web"
        elif content_type.startswith(b"application/grpc"):
            self._kind = "grpc"
        elif content_type.startswith(b"application/connect+"):
            self._kind = "stream"
        elif status == 200:
            self._result = "ok"
        elif content_type.startswith(b"application/json"):
            self._kind = "error"

    def _last_body(self, body: bytes) -> None:
        # Only the final message is read, and only its last frame: the status lives there.
        if self._kind == "error":
            self._result = _json_code(body, self._result)
        elif self._kind == "stream":
            end = _last_frame(body, 0x02)
            if end is not None:
                error = _json_object(end).get("error")
                self._result = _json_code(error, self._result) if isinstance(error, dict) else "ok"
        elif self._kind == "web":
            trailer = _last_frame(body, 0x80)
            if trailer is not None:
                lines = (line.partition(b":") for line in trailer.split(b"\r\n"))
                self._grpc_status((name, value) for name, _, value in lines)

    def _grpc_status(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name.strip().lower() == b"grpc-status":
                self._result = _grpc_name(value.strip())
                return


def _grpc_name(value: bytes) -> str:
    try:
        return GRPC_CODES.get(int(value), "unknown")
    except ValueError:
        return "unknown"


def _last_frame(body: bytes, flag: int) -> bytes | None:
    """The payload of the envelope frame with ``flag`` set, when it is the last frame of ``body``."""
    i = 0
    while i + 5 <= len(body):
        size = int.from_bytes(body[i + 1 : i + 5], "big")
        if i + 5 + size >= len(body):
            return body[i + 5 : i + 5 + size] if body[i] & flag else None
        i += 5 + size
    return None


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _json_code(source: bytes | dict[str, Any], default: str) -> str:
    obj = _json_object(source) if isinstance(source, bytes) else source
    code = obj.get("code")
    return code if isinstance(code, str) and code in CODE_NAMES else default
