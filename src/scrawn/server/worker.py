"""One process of ``scrawn serve --workers N`` (``server/workers.py`` starts it): the whole app on hypercorn,
accepting on the socket its supervisor bound, with the settings in ``SCRAWN_*``. It says ready on a pipe
once its app has started, and drains on SIGTERM or SIGINT like a single server. It dies with its
supervisor: at once on Linux when that is killed (``kill -9`` of ``scrawn serve`` is ``kill -9`` of the whole
server, and frees the port), elsewhere by draining within a second; no worker outlives ``scrawn serve``.

``python -m scrawn.server.worker LISTEN_FD READY_FD SUPERVISOR_PID``"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
from typing import Any

ORPHAN_CHECK = 1.0  # seconds between looks at whether the supervisor is still there
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def announcing(app: Any, ready_fd: int) -> Any:
    """``app``, writing one byte to ``ready_fd`` once its startup has completed."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def said(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                os.write(ready_fd, b"1")
                os.close(ready_fd)

        await app(scope, receive, said)

    return wrapped


async def orphaned(supervisor: int) -> None:
    """Returns once this process's parent is no longer ``supervisor``."""
    while os.getppid() == supervisor:  # noqa: ASYNC110 - no event says that a parent died
        await asyncio.sleep(ORPHAN_CHECK)


def main() -> None:
    from scrawn.server import startup
    from scrawn.server.app import create_app
    from scrawn.server.config import Settings
    from scrawn.server.serve import run_hypercorn

    listen_fd, ready_fd, supervisor = (int(arg) for arg in sys.argv[1:4])
    die_with_parent(signal.SIGKILL)
    if os.getppid() != supervisor:  # it died before the line above
        sys.exit(1)
    settings = Settings.from_env()
    startup.configure_logging(settings, None, pid=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = loop.create_task(orphaned(supervisor))
        watch.add_done_callback(lambda _: stop.set())
        app = announcing(create_app(settings), ready_fd)
        try:
            await run_hypercorn(app, settings, f"fd://{listen_fd}", stop)
        finally:
            watch.cancel()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
