"""Customers: balances (keyset by user id); one customer's ledger, credit lots, reservations and usage, and
the actions grant credit, set cap and low-balance threshold, create a checkout link."""

from __future__ import annotations

import uuid
from decimal import Decimal

from starlette.responses import RedirectResponse, Response

from scrawn.errors import ValidationError
from scrawn.money import from_micros
from scrawn.server.dashboard import charts, paging
from scrawn.server.dashboard import format as fmt
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.db.engine import now_ms
from scrawn.server.events import repository as event_rows
from scrawn.server.ledger import repository as ledger_rows
from scrawn.server.ledger import summary_repository as summaries
from scrawn.server.ledger.rules import period_of
from scrawn.server.payments import service as payments
from scrawn.server.wallets import service as wallets

ZERO = Decimal(0)
DAY = 86_400_000


async def customers(dash: Dashboard, view: View) -> Response:
    q = view.request.query_params
    prefix = q.get("user", "")
    async with dash.db.read() as conn:
        rows = await summaries.balances_page(
            conn,
            view.caller.project_id,
            view.mode,
            after=q.get("after") or None,
            size=paging.PAGE,
            prefix=prefix,
        )
    more = len(rows) > paging.PAGE
    rows = rows[: paging.PAGE]
    period = period_of(now_ms())
    spent = {r.user_id: r.spent if r.spend_period == period else ZERO for r in rows}
    next_url = view.url("customers", user=prefix, after=rows[-1].user_id) if more else None
    return dash.render(view, "customers.html", rows=rows, spent=spent, prefix=prefix, next_url=next_url)


def _user(view: View) -> str:
    return wallets.check_user(view.form.get("user") or view.request.query_params.get("user", ""))


async def customer(dash: Dashboard, view: View, *, checkout: str | None = None) -> Response:
    user = _user(view)
    pid, mode = view.caller.project_id, view.mode
    q = view.request.query_params
    now = now_ms()
    async with dash.db.read() as conn:
        settings = await wallets.get_settings(conn, pid, mode, user)
        balance = await wallets.read_balance(conn, pid, mode, user)
        entries, entries_next = await wallets.list_transactions(conn, pid, mode, user, 50, q.get("after", ""))
        lots = await ledger_rows.lots_of(conn, pid, mode, user)
        holds, _ = await wallets.list_reservations(conn, pid, mode, user, False, 20, "")
        frame = charts.last(now, view.zone, "day", 30)
        scope = event_rows.Scope(pid, mode, user_id=user, since=frame.start)
        usage = await event_rows.buckets(conn, scope, frame.width, origin=frame.start)
    bars = frame.bars((b.start, from_micros(b.debit_micros)) for b in usage)
    chart = fmt.bar_chart(bars, f"Daily usage of {user}, last 30 days ({view.zone.key})", view.money)
    return dash.render(
        view,
        "customer.html",
        user=user,
        settings=settings,
        balance=balance,
        entries=entries,
        entries_next=view.url("customer", user=user, after=entries_next) if entries_next else None,
        lots=lots,
        holds=holds,
        chart=chart,
        checkout=checkout,
        from_micros=from_micros,
    )


def _back(view: View, user: str) -> Response:
    return RedirectResponse(view.url("customer", user=user), 303)


async def grant(dash: Dashboard, view: View) -> Response:
    user = _user(view)
    amount = wallets.check_amount("amount", view.form.get("amount", "").strip())
    description = wallets.check_description(view.form.get("description", "").strip())
    days = view.form.get("expires_days", "").strip()
    expires_at = None
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            raise ValidationError("expires_days", "must be a whole number of days, 1 to 3650")
        expires_at = now_ms() + int(days) * DAY
    async with dash.db.write() as conn:
        await wallets.credit(
            conn,
            view.caller.project_id,
            view.mode,
            user_id=user,
            amount=amount,
            kind="grant",
            key=f"dashboard-grant-{uuid.uuid4()}",
            description=description,
            expires_at=expires_at,
        )
    return _back(view, user)


async def limits(dash: Dashboard, view: View) -> Response:
    user = _user(view)
    cap = wallets.check_setting("spend_cap", view.form.get("spend_cap", "").strip(), allow_negative=False)
    threshold = wallets.check_setting(
        "low_balance_threshold", view.form.get("low_balance_threshold", "").strip(), allow_negative=True
    )
    async with dash.db.write() as conn:
        await wallets.update_settings(
            conn, view.caller.project_id, view.mode, user, spend_cap=cap, low_balance_threshold=threshold
        )
    return _back(view, user)


async def checkout(dash: Dashboard, view: View) -> Response:
    user = _user(view)
    top_up = payments.check_top_up(view.form.get("top_up", "").strip() or None)
    checkout_id = await payments.open_checkout(
        dash.db,
        dash.box,
        view.caller.project_id,
        view.mode,
        user,
        top_up=top_up,
        return_url=None,
        public_url=dash.public_url,
    )
    return await customer(dash, view, checkout=f"{dash.public_url}/checkout/{checkout_id}")
