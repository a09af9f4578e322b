"""One access line per request, on every protocol (docs/configuration.md#logs), and the request id.

The id comes from the client's ``x-request-id`` when it is a sane token, else is made here; it goes back in
the ``x-request-id`` response header (and the gRPC trailers), onto every log line written for the request
and into the details of internal errors. The line names the RPC or route template (never a raw path: portal
links carry their token in it), the status, the duration, the bytes each way and who called: key id,
project and mode, never the key."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from scrawn.server.logs import RequestInfo, current_request
from scrawn.server.metrics import OTHER, ASGIApp, Message, Metrics, RpcWatch, Scope, Send
from scrawn.server.tracing import request_span

log = logging.getLogger("scrawn.access")
HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Probes and scrapes arrive every few seconds: their lines are debug-level.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


def _incoming_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == HEADER and _SANE_ID.fullmatch(value):
            return value.decode("ascii")
    # 128 random bits as hex, like uuid4().hex but without building a UUID object on every call.
    return os.urandom(16).hex()


def _protocol(scope: Scope, is_rpc: bool) -> str:
    if not is_rpc:
        return "http"
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            if value.startswith(b"application/grpc-web"):
                return "grpc-web"
            if value.startswith(b"application/grpc"):
                return "grpc"
    return "connect"


def wrap(app: ASGIApp, rpc_methods: Iterable[str], metrics: Metrics | None = None) -> ASGIApp:
    """Log every HTTP request to ``app`` once it ends (or fails), with the request id set around it; with
    ``metrics``, count and time it there too. ``rpc_methods``: the ``/package.Service/Method`` paths served,
    labelled by name (any other path under a service is ``other``)."""
    rpc_methods = frozenset(rpc_methods)

    async def logged(scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start = time.perf_counter()
        info = RequestInfo(_incoming_id(scope.get("headers", ())))
        token = current_request.set(info)
        path: str = scope["path"]
        is_rpc = path in rpc_methods
        watch = RpcWatch(send)
        status = 500  # what the server sends if the app raises before starting a response
        sent = received = 0
        id_header = (HEADER, info.id.encode("ascii"))

        async def counting_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            received += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.trailers":
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await watch(message)

        try:
            with request_span(scope, path if is_rpc else None) as span:
                await app(scope, counting_receive, tagging_send)
                if span is not None:
                    span.set_attribute("scrawn.request_id", info.id)
        finally:
            seconds = time.perf_counter() - start
            # Starlette records the matched route in the (shared) scope: its template names the request.
            route = path if is_rpc else getattr(scope.get("route"), "path", None)
            code = watch.code() if is_rpc else None
            if metrics is not None:
                metrics.observe_request(route or OTHER, str(status) if code is None else code, seconds)
            fields = {
                "protocol": _protocol(scope, is_rpc),
                "method": scope.get("method"),
                ("rpc" if is_rpc else "route"): route or (path if status == 404 else OTHER),
                "status": status,
                "code": code,
                "duration_ms": round(seconds * 1000, 3),
                "bytes_in": received,
                "bytes_out": sent,
                "key_id": info.key_id,
                "project": info.project,
                "mode": info.mode,
            }
            level = logging.DEBUG if path in _QUIET else logging.INFO
            log.log(level, "request", extra={k: v for k, v in fields.items() if v is not None})
            current_request.reset(token)

    return logged
