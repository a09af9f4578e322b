"""Webhooks: this mode's endpoint (its signing secret shown only when new), the outbox's messages with
each delivery attempt and the endpoint's response, and replay — through ``webhooks/endpoints.py`` and
``webhooks/messages.py``."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from scrawn.server.dashboard import paging
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.webhooks import endpoints, messages


async def webhooks(dash: Dashboard, view: View, *, secret: str | None = None) -> Response:
    pid, mode = view.caller.project_id, view.mode
    q = view.request.query_params
    status = messages.check_status(q.get("status") or None)
    after = paging.cursor(q.get("after"))
    async with dash.db.read() as conn:
        endpoint = await endpoints.get(conn, dash.box, pid, mode)
        rows = await messages.list_messages(conn, pid, mode, status, paging.PAGE + 1, after=after)
    found, following = paging.split(rows, lambda m: (m.created_at, m.id))
    return dash.render(
        view,
        "webhooks.html",
        endpoint=endpoint,
        messages=found,
        status=status or "",
        secret=secret,
        next_url=view.url("webhooks", status=status or "", after=following) if following else None,
    )


async def message(dash: Dashboard, view: View) -> Response:
    pid, mode = view.caller.project_id, view.mode
    message_id = view.request.path_params["id"]
    async with dash.db.read() as conn:
        found = await messages.get_message(conn, pid, mode, message_id)
        attempts = await messages.attempts_of(conn, pid, mode, message_id)
    return dash.render(view, "webhook.html", m=found, attempts=attempts)


async def put_endpoint(dash: Dashboard, view: View) -> Response:
    url = endpoints.check_url(view.form.get("url", "").strip())
    rotate = view.form.get("rotate") == "yes"
    async with dash.db.write() as conn:
        found, created = await endpoints.put(
            conn, dash.box, view.caller.project_id, view.mode, url, rotate=rotate
        )
    return await webhooks(dash, view, secret=found.secret if created or rotate else None)


async def replay(dash: Dashboard, view: View) -> Response:
    message_id = view.request.path_params["id"]
    async with dash.db.write() as conn:
        await messages.replay(conn, view.caller.project_id, view.mode, message_id)
    return RedirectResponse(view.url(f"webhooks/{message_id}"), 303)
