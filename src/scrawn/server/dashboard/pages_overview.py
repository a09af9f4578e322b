"""Overview: billed usage and payments over time, events per minute, what users owe, top spenders, and
what needs attention (quarantined events, failing webhook deliveries, no payment provider)."""

from __future__ import annotations

import time
from decimal import Decimal

from starlette.responses import Response

from scrawn.money import from_micros
from scrawn.server.dashboard import format as fmt
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository as event_rows
from scrawn.server.events.quarantine import repository as quarantine_store
from scrawn.server.ledger import summary_repository as summaries
from scrawn.server.ledger.rules import period_of
from scrawn.server.payments import config as payment_config
from scrawn.server.webhooks import repository as webhook_rows

HOUR, DAY, MINUTE = 3_600_000, 86_400_000, 60_000
# by → (bucket width, buckets shown, label format)
RANGES = {"hour": (HOUR, 48, "%m-%d %H:00"), "day": (DAY, 30, "%Y-%m-%d"), "month": (DAY, 365, "%Y-%m")}


def _label(ms: int, pattern: str) -> str:
    return time.strftime(pattern, time.gmtime(ms / 1000))


def usage_bars(found: list[event_rows.Bucket], by: str, now: int) -> list[fmt.Bar]:
    """Every bucket of the range, empty ones too, labelled in UTC; months add up their days."""
    width, count, pattern = RANGES[by]
    first = now - now % width - (count - 1) * width
    totals: dict[str, Decimal] = {}
    for start in range(first, now + 1, width):
        totals.setdefault(_label(start, pattern), Decimal(0))
    for bucket in found:
        label = _label(bucket.start, pattern)
        if label in totals:
            totals[label] += from_micros(bucket.debit_micros)
    return [fmt.Bar(label, value) for label, value in totals.items()]


async def overview(dash: Dashboard, view: View) -> Response:
    by = view.request.query_params.get("by", "day")
    if by not in RANGES:
        by = "day"
    width, count, _ = RANGES[by]
    now = now_ms()
    pid, mode = view.caller.project_id, view.mode
    async with dash.db.read() as conn:
        since = now - now % width - (count - 1) * width
        usage = await event_rows.buckets(conn, event_rows.Scope(pid, mode, since=since), width)
        paid = await summaries.amounts_by_bucket(conn, pid, mode, ("payment",), since, width)
        minutes = await event_rows.buckets(conn, event_rows.Scope(pid, mode, since=now - 60 * MINUTE), MINUTE)
        owed, owing = await summaries.outstanding_micros(conn, pid, mode)
        top = await summaries.top_spenders(conn, pid, mode, period_of(now), 10)
        quarantined = await quarantine_store.count_waiting(conn, pid, mode)
        failed = await webhook_rows.list_messages(conn, pid, mode, "failed", 100)
        provider = await payment_config.load(conn, dash.box, pid, mode)
    bars = usage_bars(usage, by, now)
    payments = usage_bars([event_rows.Bucket(start, 0, micros) for start, micros in paid.items()], by, now)
    per_minute = usage_bars_count(minutes, now)
    return dash.render(
        view,
        "overview.html",
        by=by,
        ranges=list(RANGES),
        usage_chart=fmt.bar_chart(bars, f"Billed usage by {by} (UTC)", view.money),
        billed=sum((b.value for b in bars), Decimal(0)),
        payments_chart=fmt.bar_chart(payments, f"Payments received by {by} (UTC)", view.money),
        received=sum((b.value for b in payments), Decimal(0)),
        minute_chart=fmt.bar_chart(per_minute, "Events per minute, last hour"),
        last_minute=int(per_minute[-1].value) if per_minute else 0,
        owed=from_micros(owed),
        owing=owing,
        top=top,
        quarantined=quarantined,
        failed=len(failed),
        provider=provider,
    )


def usage_bars_count(found: list[event_rows.Bucket], now: int) -> list[fmt.Bar]:
    counts = {b.start: b.events for b in found}
    first = now - now % MINUTE - 59 * MINUTE
    return [
        fmt.Bar(_label(start, "%H:%M"), Decimal(counts.get(start, 0)))
        for start in range(first, now + 1, MINUTE)
    ]
