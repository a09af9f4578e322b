"""Real servers for the SDK integration tests: ASGI apps on uvicorn and WSGI apps on werkzeug in threads,
a fake LLM provider speaking the OpenAI chat-completions / responses and Anthropic messages APIs (JSON and
SSE), a tripwire that counts every request it receives, and readers of what Scrawn stored."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from scrawn.server.db.schema import events
from tests.conftest import ServerHandle, free_port


def new_user(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def stored(server: ServerHandle, user_id: str) -> list[Any]:
    """The events stored for ``user_id``, oldest first (call from sync code, or via asyncio.to_thread)."""

    async def read() -> list[Any]:
        db = server.db()
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(events).where(events.c.user_id == user_id).order_by(events.c.ingested_at)
                )
                return list(rows)
        finally:
            await db.dispose()

    return asyncio.run(read())


def wait_stored(server: ServerHandle, user_id: str, count: int, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    rows = stored(server, user_id)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = stored(server, user_id)
    return rows


def metadata(row: Any) -> dict[str, Any]:
    return json.loads(row.metadata) if row.metadata else {}


# ------------------------------------------------------------------------------------------ servers


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve a WSGI app with werkzeug's threaded server on a free loopback port, in a thread."""
    from werkzeug.serving import make_server

    # werkzeug answers the client before it closes the app's iterable (where WSGI middleware bills) and does
    # not join its request threads on shutdown: count requests until their close() so leaving waits for them.
    in_flight = _InFlight()
    server = make_server("127.0.0.1", 0, in_flight.wrap(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        in_flight.wait_idle(10)
        server.shutdown()
        thread.join(10)


class _InFlight:
    """Counts WSGI requests from the call until the response iterable is closed."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def _add(self, delta: int) -> None:
        with self._idle:
            self._count += delta
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._count == 0, timeout)

    def wrap(self, app: Any) -> Any:
        def counted(environ: Any, start_response: Any) -> Iterator[bytes]:
            self._add(1)
            try:
                body = app(environ, start_response)
            except BaseException:
                self._add(-1)
                raise
            try:
                yield from body
            finally:
                try:
                    if hasattr(body, "close"):
                        body.close()
                finally:
                    self._add(-1)

        return counted


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


@contextmanager
def blackhole() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (calls time out)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        sock.close()


class Tripwire:
    """An HTTP server that answers 503 to everything and counts the requests it saw."""

    def __init__(self) -> None:
        self.count = 0
        tripwire = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                tripwire.count += 1
                self.send_response(503)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------------------------ fake provider


@dataclass
class FakeProvider:
    """What the fake LLM provider reports, and what it received."""

    base_url: str = ""
    openai_usage: dict[str, Any] = field(default_factory=dict)
    anthropic_usage: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def last(self) -> dict[str, Any]:
        return self.requests[-1]


def _sse(events_: list[tuple[str | None, Any]]) -> str:
    out = []
    for name, data in events_:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out)


def provider_app(state: FakeProvider) -> Any:
    """A Starlette app speaking just enough of OpenAI's and Anthropic's HTTP APIs."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def sse(body: str) -> Response:
        return Response(body, media_type="text/event-stream")

    async def chat(request: Request) -> Response:
        body = await request.json()
        state.requests.append({"path": "/v1/chat/completions", "body": body})
        model = body["model"]
        usage = dict(state.openai_usage)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "created": 1700000000, "model": model}
        if not body.get("stream"):
            return JSONResponse(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello there"},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        chunk = {**base, "object": "chat.completion.chunk"}
        items: list[tuple[str | None, Any]] = [
            (None, {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
        ]
        for word in ("Hello", " there", "!"):
            items.append((None, {**chunk, "choices": [{"index": 0, "delta": {"content": word}}]}))
        items.append((None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            items.append((None, {**chunk, "choices": [], "usage": usage}))
        items.append((None, "[DONE]"))
        return sse(_sse(items))

    async def responses(request: Request) -> Response:
        body = await request.json()
        state.requests.append({"path": "/v1/responses", "body": body})
        u = state.openai_usage
        details = u.get("prompt_tokens_details") or {}
        usage = {
            "input_tokens": u["prompt_tokens"],
            "input_tokens_details": {
                "cached_tokens": details.get("cached_tokens", 0),
                "cache_write_tokens": details.get("cache_write_tokens", 0),
            },
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        }
        response = {
            "id": f"resp_{uuid.uuid4().hex[:8]}",
            "object": "response",
            "created_at": 1700000000,
            "model": body["model"],
            "status": "completed",
            "output": [
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Hello there", "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": usage,
        }
        if not body.get("stream"):
            return JSONResponse(response)
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        return sse(
            _sse(
                [
                    (
                        "response.created",
                        {"type": "response.created", "sequence_number": 0, "response": created},
                    ),
                    (
                        "response.output_text.delta",
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": 1,
                            "item_id": "msg_1",
                            "output_index": 0,
                            "content_index": 0,
                            "delta": "Hello there",
                            "logprobs": [],
                        },
                    ),
                    (
                        "response.completed",
                        {"type": "response.completed", "sequence_number": 2, "response": response},
                    ),
                ]
            )
        )

    async def messages(request: Request) -> Response:
        body = await request.json()
        state.requests.append({"path": "/v1/messages", "body": body})
        u = dict(state.anthropic_usage)
        message = {
            "id": f"msg_{uuid.uuid4().hex[:8]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "Hello there"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": u,
        }
        if not body.get("stream"):
            return JSONResponse(message)
        start_usage = {**u, "output_tokens": 1}
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        half = max(1, u["output_tokens"] // 2)
        return sse(
            _sse(
                [
                    ("message_start", {"type": "message_start", "message": start}),
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": {"type": "text", "text": ""},
                        },
                    ),
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": "Hello"},
                        },
                    ),
                    (
                        "message_delta",  # cumulative usage, as the API sends it
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": None, "stop_sequence": None},
                            "usage": {"output_tokens": half},
                        },
                    ),
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "text_delta", "text": " there"},
                        },
                    ),
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    (
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": u["output_tokens"]},
                        },
                    ),
                    ("message_stop", {"type": "message_stop"}),
                ]
            )
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/messages", messages, methods=["POST"]),
        ]
    )
