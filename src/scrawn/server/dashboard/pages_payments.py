"""Payments: the provider set-up of this mode (secrets shown masked, replaced only when given again) and
the checkouts with their states, through ``payments/config.py`` and the payments repository."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from scrawn.server.dashboard import paging
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.payments import config as payment_config
from scrawn.server.payments import repository as payment_rows

FIELDS = (
    "provider",
    "apiKey",
    "webhookSecret",
    "storeId",
    "variantId",
    "productName",
    "returnUrl",
    "apiBase",
)


async def payments(dash: Dashboard, view: View) -> Response:
    pid, mode = view.caller.project_id, view.mode
    q = view.request.query_params
    user = q.get("user", "")
    after = paging.cursor(q.get("after"))
    async with dash.db.read() as conn:
        config = await payment_config.load(conn, dash.box, pid, mode)
        rows = await payment_rows.list_checkouts(conn, pid, mode, user or None, paging.PAGE + 1, after=after)
    checkouts, following = paging.split(rows, lambda c: (c.created_at, c.id))
    return dash.render(
        view,
        "payments.html",
        config=config.public() if config else None,
        checkouts=checkouts,
        user=user,
        next_url=view.url("payments", user=user, after=following) if following else None,
    )


async def configure(dash: Dashboard, view: View) -> Response:
    pid, mode = view.caller.project_id, view.mode
    values = {k: view.form.get(k, "").strip() or None for k in FIELDS}
    async with dash.db.write() as conn:
        current = await payment_config.load(conn, dash.box, pid, mode)
        if current is not None:  # blank secret fields keep the stored ones (they are never shown)
            values["apiKey"] = values["apiKey"] or current.api_key
            values["webhookSecret"] = values["webhookSecret"] or current.webhook_secret
        await payment_config.save(
            conn, dash.box, pid, mode, {k: v for k, v in values.items() if v is not None}
        )
    return RedirectResponse(view.url("payments"), 303)
