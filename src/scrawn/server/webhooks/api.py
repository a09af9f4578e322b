"""The webhook routes of the JSON API (dash keys): the endpoint, the outbox, the delivery log, replay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrawn.errors import NotFoundError, ValidationError
from scrawn.server.api_support import Endpoint, Wrap, json_object
from scrawn.server.db.engine import Database
from scrawn.server.keys.service import Caller
from scrawn.server.openapi import (
    BOOLEAN,
    INTEGER,
    MODE,
    STRING,
    TIME,
    Schema,
    array,
    nullable,
    obj,
    operation,
    upsert,
)
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks import endpoints, messages

# What the handlers below declare (server/openapi.py).
ENDPOINT = obj(
    {"mode": MODE, "url": STRING, "publicKey": STRING, "createdAt": TIME, "updatedAt": TIME},
    {"secret": STRING},
)
MESSAGE = obj(
    {
        "id": STRING,
        "type": STRING,
        "mode": MODE,
        "status": {"enum": list(messages.STATUSES)},
        "attempts": INTEGER,
        "nextAttemptAt": nullable(TIME),
        "deliveredAt": nullable(TIME),
        "lastError": nullable(STRING),
        "createdAt": TIME,
        "payload": {"type": "object"},
    }
)
ATTEMPT = obj(
    {
        "attempt": INTEGER,
        "url": STRING,
        "statusCode": nullable(INTEGER),
        "error": nullable(STRING),
        "durationMs": INTEGER,
        "attemptedAt": TIME,
        "responseBody": nullable(STRING),  # the first 1,024 bytes of the endpoint's answer, as text
    }
)
IN_MODE: dict[str, Schema] = {"mode": MODE}  # ?mode= picks the mode instead of x-scrawn-mode


def endpoint_json(found: endpoints.Endpoint, *, reveal: bool) -> dict[str, Any]:
    from scrawn.server.clock import iso

    body: dict[str, Any] = {
        "mode": found.mode,
        "url": found.url,
        "publicKey": found.public_key,
        "createdAt": iso(found.created_at),
        "updatedAt": iso(found.updated_at),
    }
    if reveal:
        body["secret"] = found.secret
    return body


class WebhookApi:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    def routes(self, wrap_as: Wrap) -> list[Route]:
        def wrap(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
            return wrap_as(endpoint, "manage webhooks")

        base = "/api/v1/webhooks"
        return [
            Route(f"{base}/endpoint", wrap(self.get_endpoint), methods=["GET"]),
            Route(f"{base}/endpoint", wrap(self.put_endpoint), methods=["PUT"]),
            Route(f"{base}/endpoint", wrap(self.delete_endpoint), methods=["DELETE"]),
            Route(f"{base}/messages", wrap(self.list_messages), methods=["GET"]),
            Route(f"{base}/messages/{{id}}/attempts", wrap(self.list_attempts), methods=["GET"]),
            Route(f"{base}/messages/{{id}}/replay", wrap(self.replay), methods=["POST"]),
        ]

    @staticmethod
    def _mode(request: Request, caller: Caller) -> str:
        """``?mode=`` picks the mode; without it, the caller's (``x-scrawn-mode``, live by default)."""
        mode = request.query_params.get("mode")
        return caller.mode if mode is None else endpoints.check_mode(mode)

    @operation("The webhook endpoint", "webhooks", ENDPOINT, query={**IN_MODE, "reveal": STRING})
    async def get_endpoint(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        reveal = request.query_params.get("reveal", "").lower() in ("1", "true", "yes")
        async with self._db.read() as conn:
            found = await endpoints.get(conn, self._box, caller.project_id, mode)
        if found is None:
            raise NotFoundError(f"no webhook endpoint in {mode} mode")
        return JSONResponse(endpoint_json(found, reveal=reveal))

    @upsert(
        "Set the webhook endpoint (a new secret is shown once)",
        "webhooks",
        ENDPOINT,
        obj({"url": STRING}, {"rotate": BOOLEAN}),
        query=IN_MODE,
    )
    async def put_endpoint(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        body = await json_object(request)
        url = endpoints.check_url(body.get("url"))
        rotate = body.get("rotate", False)
        if not isinstance(rotate, bool):
            raise ValidationError("rotate", "must be a boolean")
        async with self._db.write() as conn:
            found, created = await endpoints.put(conn, self._box, caller.project_id, mode, url, rotate=rotate)
        # The secret is shown whenever it is new, so it can be stored right away.
        return JSONResponse(
            endpoint_json(found, reveal=created or rotate), status_code=201 if created else 200
        )

    @operation("Remove the webhook endpoint", "webhooks", None, status=204, query=IN_MODE)
    async def delete_endpoint(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        async with self._db.write() as conn:
            await endpoints.remove(conn, caller.project_id, mode)
        return Response(status_code=204)

    @operation(
        "The outbound webhook messages, newest first",
        "webhooks",
        obj({"messages": array(MESSAGE)}),
        query={
            **IN_MODE,
            "status": {"enum": list(messages.STATUSES)},
            "limit": {"type": "integer", "minimum": 1, "maximum": messages.MAX_LIMIT},
        },
    )
    async def list_messages(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        status = messages.check_status(request.query_params.get("status"))
        limit = messages.check_limit(request.query_params.get("limit"))
        async with self._db.read() as conn:
            found = await messages.list_messages(conn, caller.project_id, mode, status, limit)
        return JSONResponse({"messages": [messages.message_json(m) for m in found]})

    @operation(
        "The delivery attempts of a message", "webhooks", obj({"attempts": array(ATTEMPT)}), query=IN_MODE
    )
    async def list_attempts(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        async with self._db.read() as conn:
            found = await messages.attempts_of(conn, caller.project_id, mode, request.path_params["id"])
        return JSONResponse({"attempts": [messages.attempt_json(a) for a in found]})

    @operation("Deliver a message again", "webhooks", MESSAGE, query=IN_MODE)
    async def replay(self, request: Request, caller: Caller) -> Response:
        mode = self._mode(request, caller)
        async with self._db.write() as conn:
            row = await messages.replay(conn, caller.project_id, mode, request.path_params["id"])
        return JSONResponse(messages.message_json(row))
