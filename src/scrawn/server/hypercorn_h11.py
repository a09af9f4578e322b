"""A fix to hypercorn 0.18's HTTP/1.1 protocol for shutdown, installed by ``scrawn serve``
(docs/configuration.md#shutdown).

On SIGTERM hypercorn closes every idle keep-alive connection at once (``TCPServer._idle_timeout``). A request
whose bytes had already been read into that connection's buffer was still parsed after the close and handed
to the app: its event was stored, but the answer went to a closed socket, and the caller was told the server
disconnected (12 of 32 Connect callers once, under load). Now:

- a connection closed (by the shutdown or its keep-alive timeout) starts no new call: what it still had
  buffered was never processed, and the caller's retry is a first attempt, not a duplicate;
- a request that arrives after shutdown began is refused unprocessed with 503 and a Connect ``unavailable``
  body (gRPC-web and Connect clients read UNAVAILABLE and retry with the same idempotency key), and its
  connection closed;
- a call in flight is answered, with ``Connection: close`` so its client does not send another on it.

Only for hypercorn 0.18.x (``hypercorn_h2.fixable``); another runs unpatched, with a warning."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import h11

from scrawn.server.hypercorn_h2 import fixable

if TYPE_CHECKING:
    from hypercorn.protocol.h11 import H11Protocol

REFUSED = json.dumps({"code": "unavailable", "message": "the server is shutting down: retry"}).encode()


def install() -> None:
    import hypercorn.protocol

    if fixable("HTTP/1.1"):
        patched: Any = hypercorn.protocol
        patched.H11Protocol = fixed()  # ProtocolWrapper looks the class up here for each connection


def fixed() -> type[H11Protocol]:
    """hypercorn's HTTP/1.1 protocol with the fix (imported only when serving)."""
    from hypercorn.events import Closed, Event
    from hypercorn.protocol.events import Event as StreamEvent
    from hypercorn.protocol.events import Response
    from hypercorn.protocol.h11 import H11Protocol

    class FixedH11Protocol(H11Protocol):
        closed = False

        async def handle(self, event: Event) -> None:
            # Set before any await: a request parsed after the close (the idle task's close always runs
            # before the read loop's next request gets as far as _create_stream) then sees it.
            self.closed = self.closed or isinstance(event, Closed)
            await super().handle(event)

        async def stream_send(self, event: StreamEvent) -> None:
            if isinstance(event, Response) and event.status_code >= 200 and self.context.terminated.is_set():
                event = replace(event, headers=[*event.headers, (b"connection", b"close")])
            await super().stream_send(event)

        async def _create_stream(self, request: h11.Request) -> None:
            if self.closed:
                return  # never read by the app; the connection is already closing
            if self.context.terminated.is_set():
                await self._refuse()
                return
            await super()._create_stream(request)

        async def _refuse(self) -> None:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(REFUSED)).encode()),
                (b"connection", b"close"),
                *self.config.response_headers("h11"),
            ]
            await self._send_h11_event(h11.Response(status_code=503, headers=headers))
            await self._send_h11_event(h11.Data(data=REFUSED))
            await self._send_h11_event(h11.EndOfMessage())
            await self.send(Closed())

    return FixedH11Protocol
