"""The no-op on grpcio's asyncio server (gRPC's C-core HTTP/2): the same two methods as noop_server.py, raw
bytes in and out. It speaks only the gRPC protocol (no Connect, no gRPC-web, no HTTP/1.1).

    python benchmarks/noop_grpcio.py PORT     prints "ready" once bound
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc


async def register_event(request: bytes, context: Any) -> bytes:
    return b""


async def stream_events(requests: AsyncIterator[bytes], context: Any) -> bytes:
    async for _ in requests:
        pass
    return b""


async def main(port: int) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)])
    handlers = {
        "RegisterEvent": grpc.unary_unary_rpc_method_handler(register_event),
        "StreamEvents": grpc.stream_unary_rpc_method_handler(stream_events),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("event.v1.EventService", handlers)])
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.stop(5)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
