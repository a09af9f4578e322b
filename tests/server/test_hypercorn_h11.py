"""server/hypercorn_h11.py: during a shutdown an HTTP/1.1 request is answered or refused unprocessed, never
read by the app and then cut off. hypercorn's own protocol, connection context and task group, driven with the
bytes and events its TCP server feeds it; what it writes to the socket is recorded."""

from __future__ import annotations

import asyncio
from typing import Any

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.task_group import TaskGroup
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.typing import ConnectionState

from scrawn.server import hypercorn_h11

REQUEST = b"POST /event.v1.EventService/RegisterEvent HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


class Connection:
    """One HTTP/1.1 connection's protocol; ``wire`` is what it wrote, ``calls`` what reached the app."""

    def __init__(self, task_group: TaskGroup) -> None:
        self.wire = b""
        self.closed = asyncio.Event()
        self.idle = asyncio.Event()  # between requests again (hypercorn's Updated(idle=True))
        self.called = asyncio.Event()
        self.calls: list[bytes] = []
        self.release = asyncio.Event()
        self.release.set()
        self.context = WorkerContext(None)
        self.protocol = hypercorn_h11.fixed()(
            ASGIWrapper(self.app),
            Config(),
            self.context,
            task_group,
            ConnectionState({}),
            False,
            ("127.0.0.1", 5000),
            ("127.0.0.1", 8069),
            self.send,
        )

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while (message := await receive())["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls.append(body)
        self.called.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(self, event: Event) -> None:
        if isinstance(event, RawData):
            self.wire += event.data
        elif isinstance(event, Closed):
            self.closed.set()
        elif isinstance(event, Updated) and event.idle:
            self.idle.set()


async def connection(test: Any) -> None:
    async with TaskGroup(asyncio.get_running_loop()) as task_group:
        await test(Connection(task_group))


def run(test: Any) -> None:
    asyncio.run(connection(test))


def test_a_request_still_buffered_when_its_idle_connection_closes_never_reaches_the_app() -> None:
    async def test(conn: Connection) -> None:
        await conn.protocol.handle(Closed())  # the shutdown closes the idle keep-alive connection,
        await conn.protocol.handle(RawData(REQUEST))  # whose next request was already in its read buffer
        assert conn.protocol.stream is None  # no call was started for it (a call is a stream)
        assert conn.wire == b""

    run(test)


def test_a_request_after_shutdown_began_is_refused_unprocessed_as_unavailable() -> None:
    async def test(conn: Connection) -> None:
        await conn.context.terminated.set()
        await conn.protocol.handle(RawData(REQUEST))
        assert conn.protocol.stream is None
        head, _, body = conn.wire.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert b"connection: close" in head.lower()
        assert body == b'{"code": "unavailable", "message": "the server is shutting down: retry"}'
        assert conn.closed.is_set()

    run(test)


def test_a_call_in_flight_when_shutdown_begins_is_answered_and_its_connection_then_closed() -> None:
    async def test(conn: Connection) -> None:
        conn.release.clear()
        await conn.protocol.handle(RawData(REQUEST))
        await conn.called.wait()
        await conn.context.terminated.set()
        conn.release.set()
        await conn.closed.wait()
        head, _, body = conn.wire.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in head.lower()
        assert body == b"{}"

    run(test)


def test_between_shutdowns_a_keep_alive_connection_serves_one_request_after_another() -> None:
    async def test(conn: Connection) -> None:
        for _ in (1, 2):
            conn.idle.clear()
            await conn.protocol.handle(RawData(REQUEST))
            await conn.idle.wait()
        assert conn.calls == [b"{}", b"{}"]
        assert conn.wire.count(b"HTTP/1.1 200 ") == 2
        assert b"connection: close" not in conn.wire.lower()
        assert not conn.closed.is_set()

    run(test)
