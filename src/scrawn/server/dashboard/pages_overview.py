"""Overview: billed usage and payments over time (in the project's time zone), events per minute, what
users owe, top spenders, and what needs attention (quarantined events, failing webhook deliveries, no
payment provider). Billed usage reads the usage rollup (``events/rollup.py``), a few rows per hour, never
the events themselves; the time zone is set here too."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from starlette.responses import RedirectResponse, Response

from scrawn.money import from_micros
from scrawn.server.dashboard import charts
from scrawn.server.dashboard import format as fmt
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository as event_rows
from scrawn.server.events import rollup_repository as rollup
from scrawn.server.events.quarantine import repository as quarantine_store
from scrawn.server.ledger import summary_repository as summaries
from scrawn.server.ledger.rules import period_of
from scrawn.server.payments import config as payment_config
from scrawn.server.projects import service as projects
from scrawn.server.webhooks import repository as webhook_rows

MINUTE = 60_000
FAILED_SHOWN = 100  # failed webhook messages counted on the Overview; more read "100+"
RANGES = {"hour": 48, "day": 30, "month": 12}  # by → local buckets shown, the current one last


async def overview(dash: Dashboard, view: View) -> Response:
    by = view.request.query_params.get("by", "day")
    if by not in RANGES:
        by = "day"
    now = now_ms()
    frame = charts.last(now, view.zone, by, RANGES[by])
    pid, mode = view.caller.project_id, view.mode
    async with dash.db.read() as conn:
        usage = await rollup.totals(conn, pid, mode, frame.start, frame.end, frame.width)
        paid = await summaries.amounts_by_bucket(conn, pid, mode, ("payment",), frame.start, frame.width)
        minutes = await event_rows.buckets(conn, event_rows.Scope(pid, mode, since=now - 60 * MINUTE), MINUTE)
        owed, owing = await summaries.outstanding_micros(conn, pid, mode)
        top = await summaries.top_spenders(conn, pid, mode, period_of(now), 10)
        quarantined = await quarantine_store.count_waiting(conn, pid, mode)
        failed = await webhook_rows.list_messages(conn, pid, mode, "failed", FAILED_SHOWN + 1)
        provider = await payment_config.load(conn, dash.box, pid, mode)
    bars = frame.bars((start, from_micros(micros)) for start, _, micros in usage)
    payments = frame.bars((start, from_micros(micros)) for start, micros in paid.items())
    per_minute = usage_bars_count(minutes, now, view.zone)
    zone = view.zone.key
    return dash.render(
        view,
        "overview.html",
        by=by,
        ranges=list(RANGES),
        zone=zone,
        usage_chart=fmt.bar_chart(bars, f"Billed usage by {by} ({zone})", view.money),
        billed=sum((b.value for b in bars), Decimal(0)),
        payments_chart=fmt.bar_chart(payments, f"Payments received by {by} ({zone})", view.money),
        received=sum((b.value for b in payments), Decimal(0)),
        minute_chart=fmt.bar_chart(per_minute, "Events per minute, last hour"),
        last_minute=int(per_minute[-1].value) if per_minute else 0,
        owed=from_micros(owed),
        owing=owing,
        top=top,
        quarantined=quarantined,
        failed=f"{FAILED_SHOWN}+" if len(failed) > FAILED_SHOWN else str(len(failed)),
        provider=provider,
    )


async def set_time_zone(dash: Dashboard, view: View) -> Response:
    """The project's time zone (both modes: it is a project setting), validated by the projects service."""
    zone = projects.check_time_zone(view.form.get("timeZone", ""), "timeZone")
    async with dash.db.write() as conn:
        await projects.update_project(conn, view.caller.project_id, time_zone=zone)
    return RedirectResponse(view.url("overview", by=view.form.get("by")), 303)


def usage_bars_count(found: list[event_rows.Bucket], now: int, zone: ZoneInfo) -> list[fmt.Bar]:
    """Events per minute of the last hour, labelled in the project's zone (a minute starts on the same
    instant in every zone in use)."""
    counts = {b.start: b.events for b in found}
    first = now - now % MINUTE - 59 * MINUTE
    return [
        fmt.Bar(datetime.fromtimestamp(start / 1000, zone).strftime("%H:%M"), Decimal(counts.get(start, 0)))
        for start in range(first, now + 1, MINUTE)
    ]
