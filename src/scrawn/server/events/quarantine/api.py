"""The quarantine routes of the JSON API (dash keys; the mode from ``x-scrawn-mode``): the kept events,
oldest first with a keyset cursor, and repricing them (docs/pricing-safety.md#quarantine)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrawn.errors import ValidationError
from scrawn.money import format_amount
from scrawn.server.api_support import Wrap, answer_json, json_object
from scrawn.server.clock import iso
from scrawn.server.db.engine import Database
from scrawn.server.events.quarantine import service as quarantine
from scrawn.server.events.quarantine.types import KeptEvent
from scrawn.server.keys.service import Caller
from scrawn.server.openapi import BOOLEAN, DECIMAL, INTEGER, STRING, TIME, array, nullable, obj, operation

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_ID = 64
# What the handlers below declare (server/openapi.py).
KEPT = obj(
    {
        "id": STRING,
        "idempotencyKey": STRING,
        "eventType": STRING,
        "userId": STRING,
        "reportedAt": TIME,
        "receivedAt": TIME,
        "reasonCode": STRING,
        "field": STRING,
        "reason": STRING,
        "attempts": INTEGER,
        "lastAttemptAt": {"anyOf": [TIME, {"const": ""}]},  # "" before the first repricing attempt
    }
)
KEPT_PAGE = obj(
    {
        "waiting": INTEGER,
        "byReason": {"type": "object", "additionalProperties": INTEGER},
        "events": array(KEPT),
        "next": nullable(STRING),
    }
)
REPRICE_IN = obj({}, {"all": BOOLEAN, "ids": array(STRING)})
REPRICED = obj({"repriced": INTEGER, "waiting": INTEGER, "amount": DECIMAL})


def kept_json(r: KeptEvent) -> dict[str, Any]:
    return answer_json(
        r,
        KEPT["properties"],
        reportedAt=iso(r.reported_at * 1000),
        receivedAt=iso(r.received_at),
        lastAttemptAt=iso(r.last_attempt_at),
    )


class QuarantineApi:
    def __init__(self, db: Database) -> None:
        self._db = db

    def routes(self, wrap_as: Wrap) -> list[Route]:
        return [
            Route("/api/v1/quarantine", wrap_as(self.list_kept, "read the quarantine"), methods=["GET"]),
            Route(
                "/api/v1/quarantine/reprice",
                wrap_as(self.reprice, "reprice kept events"),
                methods=["POST"],
            ),
        ]

    @operation(
        "Events kept for repricing, oldest first",
        "quarantine",
        KEPT_PAGE,
        query={"limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "after": STRING},
    )
    async def list_kept(self, request: Request, caller: Caller) -> Response:
        limit = _limit(request.query_params.get("limit"))
        after_id = request.query_params.get("after")
        async with self._db.read() as conn:
            found = await quarantine.waiting(
                conn, caller.project_id, caller.mode, limit=limit, after_id=after_id and after_id[:MAX_ID]
            )
        rows = found.events
        return JSONResponse(
            {
                "waiting": found.total,
                "byReason": found.by_reason,
                "events": [kept_json(r) for r in rows],
                "next": rows[-1].id if len(rows) == limit else None,
            }
        )

    @operation("Reprice kept events (all, or by id)", "quarantine", REPRICED, body=REPRICE_IN)
    async def reprice(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request)
        ids = _ids(body)
        done = await quarantine.reprice(self._db, caller.project_id, caller.mode, ids)
        return JSONResponse(
            {"repriced": done.repriced, "waiting": done.waiting, "amount": format_amount(done.amount)}
        )


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _ids(body: dict[str, Any]) -> list[str] | None:
    """``{"all": true}`` → None (every waiting event); ``{"ids": [...]}`` → those ids."""
    every, ids = body.get("all", False), body.get("ids")
    if not isinstance(every, bool):
        raise ValidationError("all", "must be a boolean")
    if ids is not None and (
        not isinstance(ids, list)
        or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID for i in ids)
        or len(ids) > quarantine.MAX_IDS
    ):
        raise ValidationError("ids", f"must be a list of at most {quarantine.MAX_IDS} event ids")
    if every == bool(ids):
        raise ValidationError("ids", 'give either "all": true or a non-empty list of "ids"')
    return None if every else ids
