"""Keys: list, create (shown once, in the answer to the form) and revoke, through ``KeyService``."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from scrawn.errors import ValidationError
from scrawn.server.dashboard import paging
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.keys.types import ROLES

MAX_EXPIRY_DAYS = 3650


async def keys(dash: Dashboard, view: View, *, created: str | None = None, status: int = 200) -> Response:
    """Keys oldest first, a page at a time (``after=<ms>:<id>``, as the JSON API's page token)."""
    after = view.request.query_params.get("after", "")
    paging.cursor(after)  # a malformed link names the field
    async with dash.db.read() as conn:
        found, token = await dash.keys.page_keys(conn, view.caller.project_id, paging.PAGE, after)
    next_url = view.url("keys", after=token) if token else None
    return dash.render(view, "keys.html", status, keys=found, roles=ROLES, created=created, next_url=next_url)


async def create(dash: Dashboard, view: View) -> Response:
    role = view.form.get("role", "")
    if role not in ROLES:
        raise ValidationError("role", f"must be one of {', '.join(ROLES)}")
    days = view.form.get("expires_days", "").strip()
    if days and (not days.isdigit() or not 1 <= int(days) <= MAX_EXPIRY_DAYS):
        raise ValidationError("expires_days", f"must be a whole number of days, 1 to {MAX_EXPIRY_DAYS}")
    async with dash.db.write() as conn:
        _, key = await dash.keys.create_key(
            conn,
            view.caller.project_id,
            role,
            view.form.get("name", ""),
            int(days) * 86_400 if days else None,
        )
    return await keys(dash, view, created=key, status=201)


async def revoke(dash: Dashboard, view: View) -> Response:
    async with dash.db.write() as conn:
        await dash.keys.revoke_key(conn, view.caller.project_id, view.request.path_params["id"])
    return RedirectResponse(view.url("keys"), 303)
