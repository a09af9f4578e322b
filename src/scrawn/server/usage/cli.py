"""``scrawn prices`` (the model price list and the project's overrides) and ``scrawn usage`` (summaries and
time series of usage records)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ScrawnError
from scrawn.money import format_amount
from scrawn.server.cli_support import DataOpt, DbOpt, ProjectOpt, console, in_project, load_settings, reported
from scrawn.server.db.engine import now_ms
from scrawn.server.pricing import currency, models, overrides
from scrawn.server.pricing.types import CLI
from scrawn.server.projects import service as projects
from scrawn.server.projects.types import ProjectMoney
from scrawn.server.usage import queries, records, series
from scrawn.server.usage.types import Filter

prices_app = typer.Typer(
    help="LLM model prices: the built-in book and the project's overrides.", no_args_is_help=True
)
usage_app = typer.Typer(help="Usage records: summaries and time series.", no_args_is_help=True)


UsageMode = Annotated[str, typer.Option("--mode", help="live or test")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Only this user")]
ContextOpt = Annotated[str | None, typer.Option("--context", help="customer or system")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Only this model")]
FromOpt = Annotated[str | None, typer.Option("--from", help="Start: a date or ISO 8601 time (in --tz)")]
ToOpt = Annotated[str | None, typer.Option("--to", help="End (exclusive): a date or ISO 8601 time (in --tz)")]
TzOpt = Annotated[str, typer.Option("--tz", help="IANA time zone for dates and buckets")]


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else format_amount(value)


@prices_app.command("list")
def prices_list(
    provider: Annotated[str, typer.Option(help="Only this provider (e.g. openai)")] = "",
    search: Annotated[str, typer.Option(help="Substring of the model id or name")] = "",
    limit: Annotated[int, typer.Option(help="At most this many rows")] = 50,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """The price list in USD (per million tokens, per minute of audio): overrides first, then the book."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)

    async def work(conn: AsyncConnection, project_id: str) -> tuple[list[models.Override], ProjectMoney]:
        return await overrides.list_overrides(conn, project_id), await projects.load(conn, project_id)

    found, money = in_project(settings, project, work)
    rows = models.price_list(found, now_ms(), provider=provider, search=search)
    table = Table(
        "source", "model", "provider", "input", "output", "cached", "cache write", "audio/min", "from", "note"
    )
    for r in rows[: max(limit, 0)]:
        note = ("tiered: base rates shown. " if r.tiered else "") + ("" if r.in_force else "not in force. ")
        table.add_row(
            r.source,
            r.model,
            r.provider or "*",
            _usd(r.input),
            _usd(r.output),
            _usd(r.cache_read),
            _usd(r.cache_write),
            _usd(r.audio_minute),
            "-" if r.effective_from is None else models.ms_to_datetime(r.effective_from).isoformat(),
            note + (f"id {r.override_id}" if r.override_id else ""),
        )
    console.print(table)
    billed = ""
    if money.currency != currency.USD:  # the list stays USD; say how it becomes the project's money
        billed = (
            f"; billed in {money.currency} at {format_amount(money.usd_rate)} minor units per US cent"
            if money.usd_rate is not None
            else f"; billed in {money.currency} once you {currency.SET_RATE_HINT}"
        )
    console.print(
        f"{min(len(rows), max(limit, 0))} of {len(rows)} entries; prices in USD ({models.SOURCE}){billed}",
        highlight=False,
    )


@prices_app.command("set")
def prices_set(
    model: str,
    input_: Annotated[str | None, typer.Option("--input", help="USD per million input tokens")] = None,
    output: Annotated[str | None, typer.Option("--output", help="USD per million output tokens")] = None,
    cached: Annotated[str | None, typer.Option("--cached", help="USD per million cache-read tokens")] = None,
    cache_write: Annotated[
        str | None, typer.Option("--cache-write", help="USD per million cache writes")
    ] = None,
    audio: Annotated[str | None, typer.Option("--audio-per-minute", help="USD per minute of audio")] = None,
    provider: Annotated[
        str | None, typer.Option(help="Only for this provider (default: every provider)")
    ] = None,
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="ISO 8601 with offset (default: now)")
    ] = None,
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Add a price override for a model (a custom model or a negotiated rate) from a time on."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with reported():
        name = overrides.check_model("model", model)
        prov = overrides.check_provider("provider", provider)
        start = overrides.check_time("effectiveFrom", effective_from)
        rates = overrides.check_rates(
            {
                "inputPerMillion": input_,
                "outputPerMillion": output,
                "cachedInputPerMillion": cached,
                "cacheWritePerMillion": cache_write,
                "audioPerMinute": audio,
            }
        )

    async def work(conn: AsyncConnection, project_id: str) -> models.Override:
        found, _ = await overrides.put_override(
            conn, project_id, model=name, provider=prov, effective_from=start, rates=rates, by=CLI
        )
        return found

    o = in_project(settings, project, work, write=True)
    shown = overrides.override_json(o)
    console.print(
        f"override {o.id}: {o.model} ({o.provider or 'every provider'}) from {shown['effectiveFrom']}"
    )


@prices_app.command("delete")
def prices_delete(
    override_id: str, project: ProjectOpt = None, database_url: DbOpt = None, data_dir: DataOpt = None
) -> None:
    """Delete an override (usage it already priced keeps its cost)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    in_project(
        settings, project, lambda conn, p: overrides.delete_override(conn, p, override_id, by=CLI), write=True
    )
    console.print(f"deleted {override_id}")


def _when(text: str | None, tz: ZoneInfo, option: str) -> int | None:
    """A date (local midnight in ``tz``) or an ISO 8601 time (``tz`` when it has no offset) → Unix ms."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            at = datetime.combine(date.fromisoformat(text.strip()), time(0), tzinfo=tz)
        else:
            at = datetime.fromisoformat(text.strip())
            at = at if at.tzinfo else at.replace(tzinfo=tz)
    except ValueError:
        raise ScrawnError(f"{option}: must be a date (2025-03-01) or an ISO 8601 time") from None
    return models.datetime_to_ms(at)


def _filter(
    user: str | None, context: str | None, model: str | None, start: int | None, end: int | None
) -> Filter:
    if context is not None and context not in records.CONTEXTS:
        raise ScrawnError("--context: must be customer or system")
    if start is not None and end is not None and end <= start:
        raise ScrawnError("--to: must be after --from")
    return Filter(
        user_id=user,
        context=context,
        model=None if model is None else records.check_model(model),
        start=start,
        end=end,
    )


def _check_mode(mode: str) -> str:
    if mode not in ("live", "test"):
        raise ScrawnError("--mode: must be live or test")
    return mode


def _totals_row(t: queries.Totals) -> list[str]:
    return [
        format_amount(t.cost),
        str(t.records),
        str(t.input_tokens),
        str(t.output_tokens),
        str(t.cached_tokens),
        records.audio_seconds(t.audio_ms),
    ]


_TOTAL_COLUMNS = ("cost", "records", "input tokens", "output tokens", "cached", "audio s")


@usage_app.command("summary")
def usage_summary(
    mode: UsageMode = "live",
    user: UserOpt = None,
    context: ContextOpt = None,
    model: ModelOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    tz: TzOpt = "UTC",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Total cost (minor units) and tokens, by model and by context."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with reported():
        zone = series.check_time_zone(tz)
        f = _filter(user, context, model, _when(from_, zone, "--from"), _when(to, zone, "--to"))
    found = in_project(settings, project, lambda conn, p: queries.summary(conn, p, _check_mode(mode), f))
    table = Table("", *_TOTAL_COLUMNS)
    table.add_row("total", *_totals_row(found.totals), style="bold")
    for heading, groups in (("model", found.by_model), ("context", found.by_context)):
        table.add_section()
        for key, t in groups:
            table.add_row(f"{heading} {key}", *_totals_row(t))
    console.print(table)


@usage_app.command("series")
def usage_series(
    bucket: Annotated[str, typer.Option(help="hour, day or month")] = "day",
    mode: UsageMode = "live",
    user: UserOpt = None,
    context: ContextOpt = None,
    model: ModelOpt = None,
    from_: FromOpt = None,
    to: ToOpt = None,
    tz: TzOpt = "UTC",
    project: ProjectOpt = None,
    database_url: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """Usage per hour, day or month in a time zone (default: the last 30 days in days)."""
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with reported():
        zone = series.check_time_zone(tz)
        kind = series.check_bucket(bucket)
        end = _when(to, zone, "--to") or now_ms()
        start = _when(from_, zone, "--from") or end - 30 * 86_400_000
        f = _filter(user, context, model, start, end)
    found = in_project(
        settings, project, lambda conn, p: series.series(conn, p, _check_mode(mode), f, zone, kind)
    )
    table = Table("start", *_TOTAL_COLUMNS)
    for b in found:
        table.add_row(b.label, *_totals_row(b.totals))
    console.print(table)
