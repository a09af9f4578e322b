"""``scrawn serve`` and ``scrawn migrate``: run the server, bring the schema up to date."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import replace
from typing import Annotated

import typer

from scrawn.server.checks import require_database_file, require_sqlite_directory
from scrawn.server.cli_options import JsonOpt
from scrawn.server.cli_support import DataOpt, DbOpt, console, load_settings, run_db
from scrawn.server.config import DEFAULT_PORT, Settings
from scrawn.server.db.migrate import migrate
from scrawn.server.projects.cli import print_new_key

HostOpt = Annotated[str | None, typer.Option("--host", help="Bind address [env SCRAWN_HOST; 127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option("--port", help=f"Port [env SCRAWN_PORT; {DEFAULT_PORT}]")]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="json or console [env SCRAWN_LOG_FORMAT; console on a terminal, JSON otherwise]",
    ),
]


WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", help="Server processes on the port [env SCRAWN_WORKERS; one per CPU]"),
]


def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
    log_format: LogFormatOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Run the server (gRPC, Connect, gRPC-web and the JSON API on one port)."""
    from scrawn.server import envoy, startup
    from scrawn.server import workers as pool
    from scrawn.server.app import create_app

    settings = load_settings(host, port, database_url, data_dir, workers=workers)
    # The flag too, so that the processes we start (workers, Envoy) write the same format.
    settings = replace(settings, log_format=log_format or settings.log_format)
    startup.configure_logging(settings, settings.log_format)
    # The server's own packages first: a missing one is said before any check runs or any file is made.
    on_envoy = envoy.chosen(settings)
    if not on_envoy:
        import hypercorn.asyncio  # noqa: F401
    count = pool.count(settings)

    async def main() -> None:
        created = await startup.prepare(settings)  # every operator mistake stops here, as a sentence
        if created:
            print_new_key(*created)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        serving = f"scrawn serving on http://{settings.host}:{settings.port}"
        if on_envoy:
            await envoy.run(settings, stop, lambda: console.print(serving + " (pyvoy)", highlight=False))
        elif count > 1:
            ready = lambda: console.print(f"{serving} ({count} workers)", highlight=False)  # noqa: E731
            await pool.supervise(settings, count, stop, ready)
        else:
            console.print(serving, highlight=False)
            await run_hypercorn(create_app(settings), settings, f"{settings.host}:{settings.port}", stop)

    asyncio.run(main())


async def run_hypercorn(app: object, settings: Settings, bind: str, stop: asyncio.Event) -> None:
    """Serve ``app`` on ``bind`` (``host:port``, or ``fd://N``: a socket a supervisor bound) until ``stop``,
    then drain: calls in flight finish, queued events are committed."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from scrawn.server import hypercorn_h2, hypercorn_h11, tracing

    config = Config()
    config.bind = [bind]
    config.keep_alive_max_requests = 2**62  # the default (1,000) drops calls in flight on HTTP/2
    config.graceful_timeout = 30
    config.accesslog = None  # scrawn.access writes one line per request (server/access.py)
    config.errorlog = logging.getLogger("hypercorn.error")  # through our formatter, not hypercorn's
    # Idle and half-open connections are closed, not held forever (docs/configuration.md#connections).
    config.keep_alive_timeout = settings.idle_timeout
    config.read_timeout = settings.read_timeout  # type: ignore[assignment]  # hypercorn types it int
    hypercorn_h2.install()  # HTTP/2 calls outlive a neighbour's oversized message and a SIGTERM
    hypercorn_h11.install()  # an HTTP/1.1 request is answered or refused unprocessed during a SIGTERM
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        tracing.shutdown()


def migrate_command(
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
    create: Annotated[
        bool, typer.Option("--create", help="Create the SQLite database (and its directory) if missing")
    ] = False,
    json: JsonOpt = False,
) -> None:
    """Apply database migrations (Alembic) up to the latest."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    if not create:
        require_database_file(settings, "pass --create to make a new SQLite database there")
    elif settings.is_sqlite:
        require_sqlite_directory(settings)
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
    applied = run_db(settings, migrate, create=create)
    if json:
        from scrawn.server.cli_output import print_json

        print_json({"applied": [{"id": m.id, "name": m.name} for m in applied]})
        return
    for m in applied:
        console.print(f"applied {m.id}: {m.name}", highlight=False, soft_wrap=True)
    plural = "" if len(applied) == 1 else "s"
    summary = f"{len(applied)} migration{plural} applied" if applied else "already up to date"
    console.print(summary, highlight=False)
