"""``scrawn prices`` (the model price list and the project's overrides) and ``scrawn usage`` (summaries and
time series of usage records)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.errors import ScrawnError
from scrawn.money import format_amount
from scrawn.server.cli_options import Cli, OptionSpecs, choice, id_argument, options
from scrawn.server.cli_output import amount, say, snake_case, table, when
from scrawn.server.cli_support import console, pick, reported
from scrawn.server.db.engine import now_ms
from scrawn.server.pricing import currency, models, overrides
from scrawn.server.pricing import repository as prices
from scrawn.server.pricing.types import CLI
from scrawn.server.projects import service as projects
from scrawn.server.projects.types import ProjectMoney
from scrawn.server.usage import queries, records, series
from scrawn.server.usage.types import Filter

prices_app = typer.Typer(
    help="LLM model prices: the built-in book and the project's overrides.", no_args_is_help=True
)
usage_app = typer.Typer(help="Usage records: summaries and time series.", no_args_is_help=True)


# The filters ``usage summary`` and ``usage series`` share (in ``cli.more``).
FILTERS: OptionSpecs = {
    "user": (Annotated[str | None, typer.Option("--user", help="Only this user")], None),
    "context": (
        Annotated[
            str | None, typer.Option("--context", help="customer or system", parser=choice(*records.CONTEXTS))
        ],
        None,
    ),
    "model": (Annotated[str | None, typer.Option("--model", help="Only this model")], None),
    "from_": (
        Annotated[str | None, typer.Option("--from", help="Start: a date or ISO 8601 time (in --tz)")],
        None,
    ),
    "to": (
        Annotated[
            str | None, typer.Option("--to", help="End (exclusive): a date or ISO 8601 time (in --tz)")
        ],
        None,
    ),
    "tz": (Annotated[str, typer.Option("--tz", help="IANA time zone for dates and buckets")], "UTC"),
}


def _price(r: models.Rates) -> dict[str, Any]:
    note = ("tiered: base rates shown. " if r.tiered else "") + ("" if r.in_force else "not in force.")
    return {
        "source": r.source,
        "model": r.model,
        "provider": r.provider or "*",
        "input": amount(r.input),
        "output": amount(r.output),
        "cached": amount(r.cache_read),
        "cache_write": amount(r.cache_write),
        "audio_per_minute": amount(r.audio_minute),
        "effective_from": when(r.effective_from),
        "tiered": r.tiered,
        "in_force": r.in_force,
        "note": note.strip() or None,
        "override_id": r.override_id,
    }


@prices_app.command("list")
@options(wide=True)
def prices_list(
    cli: Cli,
    provider: Annotated[str, typer.Option(help="Only this provider (e.g. openai)")] = "",
    search: Annotated[str, typer.Option(help="Substring of the model id or name")] = "",
    limit: Annotated[int, typer.Option(help="At most this many rows", min=0)] = 50,
) -> None:
    """The price list in USD (per million tokens, per minute of audio): overrides first, then the book."""

    async def work(conn: AsyncConnection, project_id: str) -> tuple[list[models.Override], ProjectMoney]:
        return await overrides.list_overrides(conn, project_id), await projects.load(conn, project_id)

    found, money = cli.read(work)
    rows = models.price_list(found, now_ms(), provider=provider, search=search)
    extra = ("cached", "cache_write", "audio_per_minute", "effective_from", "note")
    table(
        cli, [_price(r) for r in rows[:limit]], ids=("override_id",), extra=extra, hide=("tiered", "in_force")
    )
    if cli.json:
        return
    billed = ""
    if money.currency != currency.USD:  # the list stays USD; say how it becomes the project's money
        billed = (
            f"; billed in {money.currency} at {format_amount(money.usd_rate)} minor units per US cent"
            if money.usd_rate is not None
            else f"; billed in {money.currency} once you {currency.SET_RATE_HINT}"
        )
    console.print(
        f"{min(len(rows), limit)} of {len(rows)} entries; prices in USD ({models.SOURCE}){billed}",
        highlight=False,
    )


@prices_app.command("set")
@options()
def prices_set(
    cli: Cli,
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
) -> None:
    """Add a price override for a model (a custom model or a negotiated rate) from a time on."""
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

    o = cli.write(work)
    shown = snake_case(overrides.override_json(o))
    say(
        cli,
        f"override {o.id}: {o.model} ({o.provider or 'every provider'}) from {shown['effective_from']}",
        shown,
    )


@prices_app.command("delete")
@options()
def prices_delete(cli: Cli, override_id: Annotated[str, id_argument("override")]) -> None:
    """Delete an override (usage it already priced keeps its cost)."""

    async def work(conn: AsyncConnection, project_id: str) -> str:
        found = await prices.override_ids_matching(conn, project_id, override_id)
        chosen = pick("model price override", override_id, found)
        await overrides.delete_override(conn, project_id, chosen, by=CLI)
        return chosen

    deleted = cli.write(work)
    say(cli, f"deleted {deleted}", {"deleted": deleted})


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


def _filter(cli: Cli, *, last_days: int | None = None) -> tuple[Filter, ZoneInfo]:
    """The usage filter the options give (``--from`` defaulting to ``last_days`` before ``--to`` or now),
    and the time zone; bad values are one-line errors naming the option."""
    given = cli.more
    with reported():
        zone = series.check_time_zone(given["tz"])
        start, end = _when(given["from_"], zone, "--from"), _when(given["to"], zone, "--to")
        if last_days is not None:
            end = end or now_ms()
            start = start or end - last_days * 86_400_000
        if start is not None and end is not None and end <= start:
            raise ScrawnError("--to: must be after --from")
        model = given["model"]
        checked = None if model is None else records.check_model(model)
    return Filter(user_id=given["user"], context=given["context"], model=checked, start=start, end=end), zone


def _totals(t: queries.Totals) -> dict[str, Any]:
    return {
        "cost": t.cost,
        "records": t.records,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cached_tokens": t.cached_tokens,
        "audio_seconds": records.audio_seconds(t.audio_ms),
    }


@usage_app.command("summary")
@options(mode=True, wide=True, more=FILTERS)
def usage_summary(cli: Cli) -> None:
    """Total cost (minor units) and tokens, by model and by context."""
    f, _ = _filter(cli)
    found = cli.read(lambda conn, p: queries.summary(conn, p, cli.mode, f))
    rows = [{"group": "total", "key": None, **_totals(found.totals)}]
    for heading, groups in (("model", found.by_model), ("context", found.by_context)):
        rows += [{"group": heading, "key": key, **_totals(t)} for key, t in groups]
    table(cli, rows, ids=())


@usage_app.command("series")
@options(mode=True, wide=True, more=FILTERS)
def usage_series(
    cli: Cli,
    bucket: Annotated[str, typer.Option(help="hour, day or month", parser=choice(*series.BUCKETS))] = "day",
) -> None:
    """Usage per hour, day or month in a time zone (default: the last 30 days in days)."""
    f, zone = _filter(cli, last_days=30)
    found = cli.read(lambda conn, p: series.series(conn, p, cli.mode, f, zone, bucket))
    table(cli, [{"start": b.label, **_totals(b.totals)} for b in found], ids=())
