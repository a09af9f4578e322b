"""``scrawn serve`` and ``scrawn migrate``: run the server, bring the schema up to date."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from scrawn.server.cli_support import DataOpt, DbOpt, console, load_settings, run_db
from scrawn.server.config import DEFAULT_PORT
from scrawn.server.db.engine import Database
from scrawn.server.db.migrate import migrate
from scrawn.server.projects.cli import print_new_key
from scrawn.server.projects.service import bootstrap

HostOpt = Annotated[str | None, typer.Option("--host", help="Bind address [env SCRAWN_HOST; 127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option("--port", help=f"Port [env SCRAWN_PORT; {DEFAULT_PORT}]")]


def serve(
    host: HostOpt = None, port: PortOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Run the server (gRPC, Connect, gRPC-web and the JSON API on one port)."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from scrawn.server.app import create_app, ensure_schema

    settings = load_settings(host, port, database_url, data_dir)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    async def main() -> None:
        db = Database(settings.resolved_database_url)
        try:
            if settings.is_sqlite:
                created = await bootstrap(db, settings, "default", only_if_empty=True)
                if created:
                    print_new_key(*created)
            else:
                await ensure_schema(db)
        finally:
            await db.dispose()
        config = Config()
        config.bind = [f"{settings.host}:{settings.port}"]
        config.keep_alive_max_requests = 2**62  # the default (1,000) drops calls in flight on HTTP/2
        config.graceful_timeout = 30
        config.accesslog = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"scrawn serving on http://{settings.host}:{settings.port}", highlight=False)
        await hypercorn_serve(create_app(settings), config, shutdown_trigger=stop.wait)

    asyncio.run(main())


def migrate_command(database_url: DbOpt = None, data_dir: DataOpt = None) -> None:
    """Apply database migrations (Alembic) up to the latest."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_db(settings, migrate)
    console.print("database is up to date")
