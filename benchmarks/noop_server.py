"""The no-op ceiling (DESIGN §10): the same server stack as ``scrawn serve`` (hypercorn, h2c + HTTP/1.1,
connectrpc's generated ``EventServiceASGIApplication``, the same path dispatch in front of it) with a handler
that does nothing: RegisterEvent answers an empty ``RegisterEventResponse`` at once, StreamEvents drains the
stream and answers the count. Whatever a benchmark gets from it is the most ``scrawn serve`` could get.

    python benchmarks/noop_server.py --port 8070

Prints ``ready`` once the socket is bound. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("SCRAWN_BENCH_SRC") or str(Path(__file__).resolve().parents[1] / "src"))

from hypercorn.asyncio import serve
from hypercorn.config import Config

from scrawn._proto.event.v1 import event_pb2 as pb
from scrawn._proto.event.v1.event_connect import EventServiceASGIApplication
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._proto.usage.v1.usage_connect import UsageServiceASGIApplication

READ_MAX_BYTES = 8 * 1024 * 1024  # as scrawn.server.app


class NoopEventService:
    async def register_event(self, request: pb.RegisterEventRequest, ctx: Any) -> pb.RegisterEventResponse:
        return pb.RegisterEventResponse()

    async def stream_events(
        self, request: AsyncIterator[pb.StreamEventRequest], ctx: Any
    ) -> pb.StreamEventResponse:
        n = 0
        async for _ in request:
            n += 1
        return pb.StreamEventResponse(eventsProcessed=n)

    async def void_event(self, request: pb.VoidEventRequest, ctx: Any) -> pb.VoidEventResponse:
        return pb.VoidEventResponse()  # the generated app resolves every method of the service


class NoopUsageService:
    async def track_events(
        self, request: usage_pb.TrackEventsRequest, ctx: Any
    ) -> usage_pb.TrackEventsResponse:
        return usage_pb.TrackEventsResponse(accepted=len(request.events))

    def __getattr__(
        self, name: str
    ) -> Any:  # the generated app resolves every method; only TrackEvents is called
        async def unused(request: Any, ctx: Any) -> Any:
            raise NotImplementedError(name)

        return unused


def create_app() -> Any:
    rpc = EventServiceASGIApplication(NoopEventService(), read_max_bytes=READ_MAX_BYTES)
    usage = UsageServiceASGIApplication(NoopUsageService(), read_max_bytes=READ_MAX_BYTES)
    routes = {rpc.path + "/": rpc, usage.path + "/": usage}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The same prefix dispatch as scrawn.server.app.create_app, so the path through the stack matches.
        if scope["type"] == "http":
            path: str = scope["path"]
            slash = path.find("/", 1)
            target = routes.get(path[: slash + 1]) if slash > 0 else None
            if target is not None:
                await target(scope, receive, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200 if path == "/readyz" else 404,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    return app


app = create_app()  # for servers that import an ASGI app by name (pyvoy, granian)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8070)
    args = parser.parse_args()

    async def run() -> None:
        # The same hypercorn settings as `scrawn serve` (src/scrawn/server/serve.py).
        config = Config()
        config.bind = [f"{args.host}:{args.port}"]
        config.keep_alive_max_requests = 2**62
        config.graceful_timeout = 30
        config.accesslog = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.call_soon(lambda: print("ready", flush=True))
        await serve(create_app(), config, shutdown_trigger=stop.wait)

    asyncio.run(run())


if __name__ == "__main__":
    main()
