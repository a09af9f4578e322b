"""Webhooks: this mode's endpoint (its signing secret shown only when new), the outbox's messages with
each delivery attempt and the endpoint's response, and replay — through ``webhooks/endpoints.py`` and
``webhooks/messages.py``."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.webhooks import endpoints, messages


async def webhooks(dash: Dashboard, view: View, *, secret: str | None = None) -> Response:
    pid, mode = view.caller.project_id, view.mode
    status = messages.check_status(view.request.query_params.get("status") or None)
    async with dash.db.read() as conn:
        endpoint = await endpoints.get(conn, dash.box, pid, mode)
        found = await messages.list_messages(conn, pid, mode, status, 100)
    return dash.render(
        view, "webhooks.html", endpoint=endpoint, messages=found, status=status or "", secret=secret
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
