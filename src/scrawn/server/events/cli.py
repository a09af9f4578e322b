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
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, id_argument, options
from scrawn.server.cli_output import Col, json_line, print_json, say, table, table_of, text, when
from scrawn.server.cli_support import console, fail, pick, project_of, ts
from scrawn.server.db.engine import Database
from scrawn.server.events import repository, void_service
from scrawn.server.events.lineage import Lineage, lineage
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
EventArg = Annotated[str, id_argument("event")]


def record(r: EventRecord) -> dict[str, Any]:
    """An event with the export's columns as fields: amounts exact (Decimal), times ISO 8601 UTC."""
    reported = datetime.fromtimestamp(r.reported_at, tz=UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": r.id,
        "event_type": r.event_type,
        "user_id": r.user_id,
        "basic_usage_type": r.basic_usage_type,
        "reported_at": reported,
        "ingested_at": when(r.ingested_at),
        "debit": r.debit,
        "model": r.model,
        "provider": r.provider,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "input_cache_tokens": r.input_cache_tokens,
        "output_cache_tokens": r.output_cache_tokens,
        "input_debit": r.input_debit,
        "output_debit": r.output_debit,
        "input_cache_debit": r.input_cache_debit,
        "output_cache_debit": r.output_cache_debit,
        "name": r.name,
        "quantity": r.quantity,
        "product_ref": r.product_ref,
        "metadata": r.metadata,  # the stored JSON text
        "idempotency_key": r.idempotency_key,
        "voided_at": when(r.voided_at),  # null unless voided: a voided event is no longer billed
        "void_reason": r.void_reason,
    }


def event_json(r: EventRecord) -> dict[str, Any]:
    return record(r) | {"metadata": None if r.metadata is None else json.loads(r.metadata)}


# tail ---------------------------------------------------------------------------------------------------

WIDE_TAIL = 120  # columns: from here on (or with --wide) a table, below it two lines per event
TAIL_COLUMNS = (
    Col("ingested_at", "ingested"),
    Col("event_id", "id", id=True),
    Col("user_id", "user"),
    Col("event_type", "type"),
    Col("usage", "usage / model"),
    Col("charged", "debit", right=True),
    Col("idempotency_key", "idempotency key"),
)


def _usage(row: EventRecord) -> str:
    if row.model:
        return f"{row.provider}/{row.model}" if row.provider else str(row.model)
    if row.name:
        return f"{row.name} × {row.quantity}" if row.quantity else str(row.name)
    return str(row.basic_usage_type or "-")


def _charged(r: EventRecord) -> str:
    return format_amount(r.debit) if r.voided_at is None else f"{format_amount(r.debit)} (void)"


def _print_rows(cli: Cli, rows: Sequence[EventRecord], header: bool) -> None:
    if cli.json:  # JSON Lines: one event per line, so --follow can stream them
        for r in rows:
            sys.stdout.write(json_line(event_json(r)))
    elif cli.wide or console.width >= WIDE_TAIL:
        shown = [record(r) | {"usage": _usage(r), "charged": _charged(r)} for r in rows]
        console.print(table_of(shown, TAIL_COLUMNS, header=header))
    else:  # narrow (a pipe gets 80 columns): the whole id on the first line, the rest on the second
        for r in rows:
            console.print(
                f"{ts(r.ingested_at)}  {r.id}  {_charged(r)}", markup=False, highlight=False, soft_wrap=True
            )
            console.print(
                f"    {r.user_id} · {r.event_type} · {_usage(r)} · key {r.idempotency_key}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    sys.stdout.flush()  # --follow is often piped: show each batch as it arrives


@events_app.command("tail")
@options(mode=True, wide=True)
def tail(
    cli: Cli,
    user: UserOpt = None,
    limit: Annotated[int, typer.Option(help="How many of the newest events", min=1)] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow", min=0.05)] = 1.0,
    page_size: PageOpt = PAGE_SIZE,
) -> None:
    """The newest events, oldest of them first; with --follow, then every new one as it is stored. With
    --json, one JSON object per line."""

    async def work(db: Database) -> None:
        async with db.read() as conn:
            scope = repository.Scope(await project_of(conn, cli.project), cli.mode, user)
            rows = list(reversed(await repository.newest(conn, scope, limit)))
            _print_rows(cli, rows, header=True)
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
                        _print_rows(cli, new, header=False)
                    for r in page:
                        seen[r.id] = r.ingested_at
                        mark = r.ingested_at if mark is None else max(mark, r.ingested_at)
            if mark is not None:  # forget what has fallen out of the look-behind window
                seen = {i: at for i, at in seen.items() if at >= mark - LATE_MS}

    try:
        cli.run(work)
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
        fail(f"{option} must be a date (2025-03-01) or an ISO 8601 time", 2)
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def _csv_row(r: EventRecord) -> list[str]:
    """The record's fields in ``CSV_COLUMNS`` order; absent values empty, amounts exact decimal text."""
    return ["" if v is None else text(v) for v in record(r).values()]


@events_app.command("export")
@options(mode=True, json=False)
def export(
    cli: Cli,
    user: UserOpt = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Ingested at or after: a date or ISO 8601 time (UTC)")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Ingested before (exclusive): a date or ISO 8601 time (UTC)")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="CSV file, or - for stdout")] = "-",
    page_size: PageOpt = PAGE_SIZE,
) -> None:
    """Events as CSV (header row; amounts in exact minor units; times ISO 8601 UTC), oldest first."""
    start, end = _when(from_, "--from"), _when(to, "--to")
    if start is not None and end is not None and end <= start:
        fail("--to must be after --from", 2)

    async def work(db: Database) -> int:
        async with db.read() as conn:
            scope = repository.Scope(
                await project_of(conn, cli.project), cli.mode, user, since=start, before=end
            )
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

    count = cli.run(work)
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
@options(mode=True)
def void(
    cli: Cli,
    event: Annotated[
        str,
        typer.Argument(help="The event's id or a unique prefix of it (with --by-key: its idempotency key)"),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is voided (kept with it; at most 255 characters)")
    ],
    by_key: Annotated[bool, typer.Option("--by-key", help="EVENT is the event's idempotency key")] = False,
) -> None:
    """Void a billed event: one reversing ledger entry credits its debit back (exactly once); the event
    stays, marked voided, and its idempotency key stays taken."""

    async def work(db: Database) -> void_service.Voided:
        checked = void_service.check_reason(reason, "--reason")
        async with db.write() as conn:
            project_id = await project_of(conn, cli.project)
            if by_key:
                target = void_service.check_target("", event)
            else:
                found = await repository.ids_matching_prefix(conn, project_id, cli.mode, event)
                target = void_service.check_target(pick("event", event, found), "")
            return await void_service.void_event(
                conn, project_id, cli.mode, target, checked, void_service.CLI_ACTOR
            )

    done = cli.run(work)
    data = {
        "event_id": done.event_id,
        "user_id": done.user_id,
        "amount": done.amount,
        "already_voided": done.already_voided,
        "voided_at": when(done.voided_at),
        "voided_by": done.voided_by,
        "reason": done.reason,
        "reversal_entry_id": done.reversal_entry_id,
    }
    if done.already_voided:
        message = (
            f"event {done.event_id} was already voided at {ts(done.voided_at)} by {done.voided_by} "
            f"({done.reason!r}); nothing changed"
        )
    else:
        message = (
            f"voided event {done.event_id} of user {done.user_id!r}: credited back "
            f"{format_amount(done.amount)} (reversal entry {done.reversal_entry_id})"
        )
    say(cli, message, data)


# explain ------------------------------------------------------------------------------------------------


def _lineage_json(found: Lineage) -> dict[str, Any]:
    entry = found.entry
    return {
        "event": event_json(found.event),
        "pricing": found.pricing,
        "tokens": [{"kind": t.label, "count": t.tokens, "debit": t.debit} for t in found.tokens],
        "ledger_entry": None
        if entry is None
        else {
            "id": entry.id,
            "kind": entry.kind,
            "amount": entry.amount,
            "created_at": when(entry.created_at),
        },
        "reversal": found.reversal,
    }


@options(mode=True)
def explain(cli: Cli, event_id: EventArg) -> None:
    """Why was this event charged what it was? Shows the debit and what priced it."""

    async def work(conn: AsyncConnection, project_id: str) -> Lineage:
        found = await repository.ids_matching_prefix(conn, project_id, cli.mode, event_id)
        return await lineage(conn, project_id, cli.mode, pick("event", event_id, found))

    found = cli.read(work)
    data = _lineage_json(found)
    if cli.json:
        print_json(data)
        return
    row, entry = found.event, found.entry
    console.print(
        f"event {row.id} ({row.event_type}) for user {row.user_id!r}", highlight=False, soft_wrap=True
    )
    console.print(f"charged {format_amount(row.debit)} minor units", highlight=False)
    if found.tokens:
        table(cli, data["tokens"], ids=(), title="token arithmetic")
    if entry is not None:
        console.print(
            f"ledger entry {entry.id}: {entry.kind} {format_amount(entry.amount)} at {ts(entry.created_at)}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("no ledger entry (nothing was charged)", highlight=False)
    if found.reversal is not None:
        console.print(found.reversal, highlight=False, soft_wrap=True)
    console.print_json(json.dumps(found.pricing))
