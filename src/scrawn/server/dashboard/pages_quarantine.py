"""Quarantine: events the configuration could not price, kept until it is fixed (docs/pricing-safety.md),
and Reprice, which runs ``events/quarantine/service.reprice`` (today's configuration, stored exactly once)."""

from __future__ import annotations

from starlette.responses import Response

from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.events.quarantine import repository as kept
from scrawn.server.events.quarantine import service as quarantine

PAGE = 100


async def page(dash: Dashboard, view: View, *, done: str | None = None) -> Response:
    pid, mode = view.caller.project_id, view.mode
    after_id = view.request.query_params.get("after", "")[:64]
    async with dash.db.read() as conn:
        after = await kept.position(conn, pid, mode, after_id) if after_id else None
        by_reason = await kept.waiting_by_reason(conn, pid, mode)
        rows = await kept.page_waiting(conn, pid, mode, limit=PAGE, after=after)
    next_url = view.url("quarantine", after=rows[-1].id) if len(rows) == PAGE else None
    return dash.render(view, "quarantine.html", rows=rows, by_reason=by_reason, next_url=next_url, done=done)


async def reprice(dash: Dashboard, view: View) -> Response:
    only = view.form.get("id") or None
    result = await quarantine.reprice(dash.db, view.caller.project_id, view.mode, [only] if only else None)
    done = (
        f"Repriced {result.repriced} event(s) for {view.money(result.amount)}; "
        f"{result.waiting} still waiting."
    )
    return await page(dash, view, done=done)
