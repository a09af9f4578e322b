"""``scrawn events``: the newest events as a table (optionally following new ones), a CSV export that
streams any number of rows, and ``void`` to correct one. All are scoped to one project and mode; the lists are
ordered by ``(ingested_at, id)``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich import box
from rich.table import Table

from scrawn.errors import ScrawnError
from scrawn.money import format_amount
from scrawn.server.cli_support import (
    DataOpt,
    DbOpt,
    ModeOpt,
    ProjectOpt,
    check_mode,
    console,
    load_settings,
    project_of,
    run_db,
    ts,
)
from scrawn.server.db.engine import Database
from scrawn.server.events import repository, void_service
from scrawn.server.events.quarantine import cli as quarantine_cli
from scrawn.server.events.types import EventRecord

events_app = typer.Typer(
    help="Billed events: tail (and follow), export as CSV, void a wrong one, the quarantine.",
    no_args_is_help=True,
)
# Kept events and repricing them (docs/pricing-safety.md#quarantine).
events_app.command("quarantine")(quarantine_cli.show)
events_app.command("reprice")(quarantine_cli.reprice)

PAGE_SIZE = 1000
# ``ingested_at`` is taken before the transaction commits, so with several server processes an event can
# become visible after a newer one. --follow looks this far behind the newest event it has shown (and
# remembers the ids it showed there), so such a late event is still printed once, not skipped.
LATE_MS = 10_000

CSV_COLUMNS = (
    "event_id",
    "event_type",
    "user_id",
    "basic_usage_type",
    "reported_at",
    "ingested_at",
    "debit",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "input_cache_tokens",
    "output_cache_tokens",
    "input_debit",
    "output_debit",
    "input_cache_debit",
    "output_cache_debit",
    "name",
    "quantity",
    "product_ref",
    "metadata",
    "idempotency_key",
    "voided_at",  # empty unless voided: a voided event is no longer billed (docs/events.md)
    "void_reason",
)

UserOpt = Annotated[str | None, typer.Option("--user", help="Only this user")]
PageOpt = Annotated[int, typer.Option("--page-size", hidden=True, min=1)]  # tests: cross page boundaries


# tail ---------------------------------------------------------------------------------------------------


def _table(header: bool) -> Table:
    # Values fold rather than end in "…"; the id never wraps, so it stays copyable (for `scrawn explain`).
    table = Table(show_header=header, box=box.SIMPLE_HEAD if header else None, pad_edge=False)
    table.add_column("ingested", overflow="fold")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("user", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("usage / model", overflow="fold")
    table.add_column("debit", justify="right", no_wrap=True)
    table.add_column("idempotency key", overflow="fold")
    return table


def _usage(row: EventRecord) -> str:
    if row.model:
        return f"{row.provider}/{row.model}" if row.provider else str(row.model)
    if row.name:
        return f"{row.name} × {row.quantity}" if row.quantity else str(row.name)
    return str(row.basic_usage_type or "-")


def _print_rows(rows: Sequence[EventRecord], header: bool) -> None:
    table = _table(header)
    for r in rows:
        table.add_row(
            ts(r.ingested_at),
            r.id,
            r.user_id,
            r.event_type,
            _usage(r),
            format_amount(r.debit) if r.voided_at is None else f"{format_amount(r.debit)} (void)",
            r.idempotency_key,
        )
    console.print(table)
    sys.stdout.flush()  # --follow is often piped: show each batch as it arrives


@events_app.command("tail")
def tail(
    user: UserOpt = None,
    limit: Annotated[int, typer.Option(help="How many of the newest events", min=1)] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow", min=0.05)] = 1.0,
    page_size: PageOpt = PAGE_SIZE,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """The newest events, oldest of them first; with --follow, then every new one as it is stored."""
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(db: Database) -> None:
        async with db.read() as conn:
            scope = repository.Scope(await project_of(conn, project), mode, user)
            rows = list(reversed(await repository.newest(conn, scope, limit)))
            _print_rows(rows, header=True)
            if not follow:
                return
            # Ids already shown or older than the first table but within LATE_MS of its newest: not new.
            seen: dict[str, int] = {r.id: r.ingested_at for r in rows}
            mark = rows[-1].ingested_at if rows else None
            if mark is not None:
                seen |= await repository.ingested_ids(conn, replace(scope, since=mark - LATE_MS))
        while True:
            await asyncio.sleep(interval)
            async with db.read() as conn:
                since = scope if mark is None else replace(scope, since=mark - LATE_MS)
                async for page in repository.pages(conn, since, page_size):
                    new = [r for r in page if r.id not in seen]
                    if new:
                        _print_rows(new, header=False)
                    for r in page:
                        seen[r.id] = r.ingested_at
                        mark = r.ingested_at if mark is None else max(mark, r.ingested_at)
            if mark is not None:  # forget what has fallen out of the look-behind window
                seen = {i: at for i, at in seen.items() if at >= mark - LATE_MS}

    try:
        run_db(settings, work)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


# export -------------------------------------------------------------------------------------------------


def _when(text: str | None, option: str) -> int | None:
    """A date (UTC midnight) or an ISO 8601 time (UTC when it has no offset) → Unix ms."""
    if text is None:
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            at = datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        else:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
    except ValueError:
        console.print(f"[red]error:[/red] {option} must be a date (2025-03-01) or an ISO 8601 time")
        raise typer.Exit(2) from None
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _amount(value: Any) -> str:
    return "" if value is None else format_amount(value)  # exact decimal text, never through float


def _csv_row(r: EventRecord) -> list[str]:
    reported = datetime.fromtimestamp(r.reported_at, tz=UTC).isoformat().replace("+00:00", "Z")
    return [
        r.id,
        r.event_type,
        r.user_id,
        _text(r.basic_usage_type),
        reported,
        ts(r.ingested_at),
        format_amount(r.debit),
        _text(r.model),
        _text(r.provider),
        _text(r.input_tokens),
        _text(r.output_tokens),
        _text(r.input_cache_tokens),
        _text(r.output_cache_tokens),
        _amount(r.input_debit),
        _amount(r.output_debit),
        _amount(r.input_cache_debit),
        _amount(r.output_cache_debit),
        _text(r.name),
        _text(r.quantity),
        _text(r.product_ref),
        _text(r.metadata),  # stored as JSON text already
        r.idempotency_key,
        "" if r.voided_at is None else ts(r.voided_at),
        _text(r.void_reason),
    ]


@events_app.command("export")
def export(
    user: UserOpt = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Ingested at or after: a date or ISO 8601 time (UTC)")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Ingested before (exclusive): a date or ISO 8601 time (UTC)")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="CSV file, or - for stdout")] = "-",
    page_size: PageOpt = PAGE_SIZE,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Events as CSV (header row; amounts in exact minor units; times ISO 8601 UTC), oldest first."""
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)
    start, end = _when(from_, "--from"), _when(to, "--to")
    if start is not None and end is not None and end <= start:
        console.print("[red]error:[/red] --to must be after --from")
        raise typer.Exit(2)

    async def work(db: Database) -> int:
        async with db.read() as conn:
            scope = repository.Scope(await project_of(conn, project), mode, user, since=start, before=end)
            # Opened only once the project is known, so a failed look-up leaves no empty file behind.
            out, close = _open(output)
            count = 0
            try:
                writer = csv.writer(out)
                writer.writerow(CSV_COLUMNS)
                async for page in repository.pages(conn, scope, page_size):
                    writer.writerows(_csv_row(r) for r in page)
                    count += len(page)
            finally:
                close()
            return count

    count = run_db(settings, work)
    if output != "-":
        console.print(f"exported {count} events to {output}")


def _open(output: str) -> tuple[IO[str], Callable[[], None]]:
    """The CSV destination (UTF-8, no newline translation, as the csv module wants) and how to release it."""
    if output == "-":
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")

        def done() -> None:
            out.flush()
            out.detach()  # leave sys.stdout itself open

        return out, done
    file = Path(output).open("w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller
    return file, file.close


# void ---------------------------------------------------------------------------------------------------


@events_app.command("void")
def void(
    event: Annotated[str, typer.Argument(help="The event's id (with --by-key: its idempotency key)")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is voided (kept with it; at most 255 characters)")
    ],
    by_key: Annotated[bool, typer.Option("--by-key", help="EVENT is the event's idempotency key")] = False,
    mode: ModeOpt = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Void a billed event: one reversing ledger entry credits its debit back (exactly once); the event
    stays, marked voided, and its idempotency key stays taken."""
    settings, mode = load_settings(database_url=database_url, data_dir=data_dir), check_mode(mode)

    async def work(db: Database) -> void_service.Voided:
        target = void_service.check_target("" if by_key else event, event if by_key else "")
        checked = void_service.check_reason(reason, "--reason")
        async with db.write() as conn:
            project_id = await project_of(conn, project)
            return await void_service.void_event(
                conn, project_id, mode, target, checked, void_service.CLI_ACTOR
            )

    done = run_db(settings, work)
    if done.already_voided:
        console.print(
            f"event {done.event_id} was already voided at {ts(done.voided_at)} by {done.voided_by} "
            f"({done.reason!r}); nothing changed",
            highlight=False,
        )
        return
    console.print(
        f"voided event {done.event_id} of user {done.user_id!r}: credited back "
        f"{format_amount(done.amount)} (reversal entry {done.reversal_entry_id})",
        highlight=False,
    )


def explain(
    event_id: str,
    mode: Annotated[str, typer.Option(help="live or test")] = "live",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Why was this event charged what it was? Shows the debit and what priced it."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(db: Database) -> tuple[EventRecord, str | None]:
        async with db.read() as conn:
            project_id = await project_of(conn, project)
            row = await repository.get(conn, project_id, mode, event_id)
            if row is None:
                raise ScrawnError(f"event not found: {event_id}")
            reversal = None
            if row.voided_at is not None:
                reversal = await void_service.describe(conn, project_id, mode, row)
        return row, reversal

    row, reversal = run_db(settings, work)
    console.print(f"event {row.id} ({row.event_type}) for user {row.user_id!r}")
    console.print(f"charged {format_amount(row.debit)} minor units")
    if reversal is not None:
        console.print(reversal, highlight=False)
    console.print_json(json.dumps(json.loads(row.pricing)))
