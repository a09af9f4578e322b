"""The server's ASGI app built from ``SCRAWN_*`` in the environment, for an HTTP server that imports its app
by name in a process of its own: on pyvoy (``server/envoy.py``) the app runs inside Envoy's embedded Python.
Built on first access, so importing this module costs nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def shield_receive(app: ASGIApp) -> ASGIApp:
    """Never cancel the server's ``receive()`` future. connectrpc watches ``receive()`` for a disconnect once
    a request's body is read and cancels that wait when the handler returns; pyvoy 1.3 then sets a result on
    the cancelled future and the event loop logs an ``InvalidStateError`` traceback for every gRPC call.
    Shielded, pyvoy's future completes normally and only our wait is cancelled; the message it would have
    delivered can only be the request's end, which nobody is waiting for any more."""

    async def shielded_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def shielded() -> Message:
            return await asyncio.shield(receive())

        await app(scope, shielded, send)

    return shielded_app


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(name)
    from scrawn.server import startup
    from scrawn.server.app import create_app
    from scrawn.server.config import Settings

    settings = Settings.from_env()
    startup.configure_logging(settings, None)  # the format and level come from SCRAWN_* too
    app = shield_receive(create_app(settings))
    globals()["app"] = app
    return app
