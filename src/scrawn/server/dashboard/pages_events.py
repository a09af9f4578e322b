"""Events: the filtered, keyset-paged list; one event's lineage (the ``scrawn explain`` answer) and Void."""

from __future__ import annotations

import json

from starlette.responses import RedirectResponse, Response

from scrawn.server.dashboard import paging
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.events import repository as event_rows
from scrawn.server.events import void_service
from scrawn.server.events.lineage import lineage
from scrawn.server.pricing.references import priced_with
from scrawn.server.pricing.service import check_name

TYPES = ("BASIC_USAGE", "AI_TOKEN_USAGE", "TYPED")
SCAN = 5_000  # events a voided or tag filter reads per page: a page answers in bounded time


async def events(dash: Dashboard, view: View) -> Response:
    q = view.request.query_params
    filters = {k: q.get(k, "") for k in ("user", "type", "model", "tag", "voided", "since", "until")}
    tag = check_name("tag", filters["tag"]) if filters["tag"] else None
    scope = event_rows.Scope(
        view.caller.project_id,
        view.mode,
        user_id=filters["user"] or None,
        since=paging.day("since", filters["since"]),
        before=paging.day("until", filters["until"], end=True),
    )
    voided = {"yes": True, "no": False}.get(filters["voided"])
    # Voided events and a tag's events are rare and unindexed: look at SCAN events a page (see listing).
    scan = SCAN if tag or voided else None
    event_type = filters["type"] if filters["type"] in TYPES else None
    model, cursor = filters["model"] or None, paging.cursor(q.get("after"))
    async with dash.db.read() as conn:
        floor = (
            await event_rows.window_end(
                conn, scope, event_type=event_type, model=model, cursor=cursor, scan=scan
            )
            if scan
            else None
        )
        rows = await event_rows.listing(
            conn,
            scope,
            event_type=event_type,
            model=model,
            cursor=cursor,
            tag=tag,
            voided=voided,
            size=paging.PAGE,
            floor=floor,
        )
    rows, after = paging.split(rows, lambda e: (e.ingested_at, e.id))
    scanned = None
    if floor and not after:  # fewer than a page in this window: the next page reads the next window
        after, scanned = f"{floor[0]}:{floor[1]}", scan
    if tag:  # the database matched the name in the pricing's text; keep the events that priced it as a tag
        rows = [e for e in rows if priced_with(json.loads(e.pricing), "tag", tag)]
    next_url = view.url("events", **filters, after=after) if after else None
    return dash.render(
        view,
        "events.html",
        rows=rows,
        filters=filters,
        types=TYPES,
        next_url=next_url,
        filtered=any(filters.values()),
        scanned=scanned,
    )


async def event(dash: Dashboard, view: View) -> Response:
    async with dash.db.read() as conn:
        found = await lineage(conn, view.caller.project_id, view.mode, view.request.path_params["id"])
    pricing = json.dumps(found.pricing, indent=2, sort_keys=True)
    metadata = json.dumps(found.metadata, indent=2, sort_keys=True) if found.metadata is not None else None
    tokens = [(t.label, t.tokens, t.debit) for t in found.tokens]
    return dash.render(
        view,
        "event.html",
        e=found.event,
        pricing=pricing,
        metadata=metadata,
        tokens=tokens,
        reversal=found.reversal,
    )


async def void(dash: Dashboard, view: View) -> Response:
    event_id = view.request.path_params["id"]
    target = void_service.check_target(event_id, "")
    reason = void_service.check_reason(view.form.get("reason", "").strip())
    async with dash.db.write() as conn:
        await void_service.void_event(
            conn, view.caller.project_id, view.mode, target, reason, view.caller.key_id
        )
    return RedirectResponse(view.url(f"events/{event_id}"), 303)
