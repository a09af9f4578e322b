"""The JSON HTTP API under ``/api/v1`` (dash keys): tags, named expressions, event and model prices, and the
other domains' routes; ``/api/v1/openapi.json`` describes them all (server/openapi.py)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrawn import __version__
from scrawn.errors import InternalError, ScrawnError
from scrawn.server.api_support import Endpoint, json_object
from scrawn.server.db.engine import Database
from scrawn.server.events.quarantine.api import QuarantineApi
from scrawn.server.keys.api import KeysApi
from scrawn.server.keys.service import Caller, KeyService
from scrawn.server.logs import request_id as current_request_id
from scrawn.server.openapi import (
    DECIMAL,
    INTEGER,
    STRING,
    TIME,
    UNIX_MS,
    Schema,
    array,
    carry,
    document,
    nullable,
    obj,
    operation,
    upsert,
)
from scrawn.server.payments.http import PaymentsHttp
from scrawn.server.portal.http import PortalHttp
from scrawn.server.pricing import overrides
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.references import Kind, deleted_warning
from scrawn.server.secretbox import SecretBox
from scrawn.server.webhooks.api import WebhookApi

log = logging.getLogger("scrawn.api")

# The answers and bodies the handlers below declare (server/openapi.py).
NAME: Schema = {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$", "maxLength": 128}
EVENT_TYPE: Schema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$", "maxLength": 128}
AMOUNT_IN: Schema = {"anyOf": [DECIMAL, INTEGER]}  # decimal strings or JSON integers, never floats
PRICE_IN: Schema = {  # ≥ 0, whole micro-units, within a signed 64-bit count of them
    "anyOf": [
        {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,6})?$"},
        {"type": "integer", "minimum": 0, "maximum": 999_999_999_999},
    ]
}
TAG = obj({"key": STRING, "price": DECIMAL, "version": INTEGER, "createdAt": UNIX_MS})
EXPRESSION = obj({"name": STRING, "expression": STRING, "version": INTEGER, "createdAt": UNIX_MS})
EVENT_PRICE = obj({"type": STRING, "expression": STRING, "version": INTEGER, "createdAt": UNIX_MS})
DELETED = obj({"deleted": STRING, "recentEvents": INTEGER})
RATES = tuple(overrides.RATE_FIELDS)
MODEL_PRICE = obj(
    {
        "id": STRING,
        "model": STRING,
        "provider": STRING,
        "effectiveFrom": TIME,
        "effectiveFromMs": UNIX_MS,
        **{rate: nullable(DECIMAL) for rate in RATES},
        "currency": {"const": "USD"},
        "createdAt": UNIX_MS,
    }
)
MODEL_PRICE_IN = obj(
    {"model": STRING},
    {"provider": STRING, "effectiveFrom": {"anyOf": [TIME, INTEGER]}, **{rate: AMOUNT_IN for rate in RATES}},
)


def error_response(error: ScrawnError) -> JSONResponse:
    """``{"code", "message", "field"}`` with the JSON API's status for the error (``scrawn._codes``)."""
    body = {"code": error.code, "message": error.message, "field": error.field}
    return JSONResponse(body, status_code=error.api_http_status)


class JsonApi:
    def __init__(
        self, db: Database, keys: KeyService, box: SecretBox | None = None, public_url: str | None = None
    ) -> None:
        self._db = db
        self._keys = keys
        self._box = box  # webhook endpoint secrets; without it, no webhook routes
        self._public_url = public_url  # where portal links point; without it (or the box), no portal

    def routes(self) -> list[Route]:
        spec: dict[str, Any] = {}

        @operation("This document: the JSON API in OpenAPI 3.1", "meta", {"type": "object"}, public=True)
        async def openapi(_: Request) -> Response:
            return JSONResponse(spec)

        routes = [Route("/api/v1/openapi.json", openapi, methods=["GET"]), *self._routes()]
        spec.update(document(routes, __version__))  # built now: a route that declares nothing fails at start
        return routes

    def _routes(self) -> list[Route]:
        return [
            Route("/api/v1/tags", self._wrap(self.list_tags), methods=["GET"]),
            Route("/api/v1/tags", self._wrap(self.put_tag), methods=["POST"]),
            Route("/api/v1/tags/{key}", self._wrap(self.delete_tag), methods=["DELETE"]),
            Route("/api/v1/expressions", self._wrap(self.list_expressions), methods=["GET"]),
            Route("/api/v1/expressions", self._wrap(self.put_expression), methods=["POST"]),
            Route("/api/v1/expressions/{name}", self._wrap(self.delete_expression), methods=["DELETE"]),
            Route("/api/v1/event-prices", self._wrap(self.list_event_prices), methods=["GET"]),
            Route("/api/v1/event-prices", self._wrap(self.put_event_price), methods=["POST"]),
            Route("/api/v1/event-prices/{type}", self._wrap(self.delete_event_price), methods=["DELETE"]),
            Route("/api/v1/model-prices", self._wrap(self.list_model_prices), methods=["GET"]),
            Route("/api/v1/model-prices", self._wrap(self.put_model_price), methods=["POST"]),
            Route("/api/v1/model-prices/{id}", self._wrap(self.delete_model_price), methods=["DELETE"]),
            *([] if self._box is None else WebhookApi(self._db, self._box).routes(self._wrap)),
            *self._payment_routes(),
            *QuarantineApi(self._db).routes(self._wrap),
            *KeysApi(self._db, self._keys).routes(self._wrap),
        ]

    def _payment_routes(self) -> list[Route]:
        if self._box is None:
            return []
        portal = (
            []
            if self._public_url is None
            else PortalHttp(self._db, self._box, self._public_url).routes(self._wrap)
        )
        return [*PaymentsHttp(self._db, self._box).routes(self._wrap), *portal]

    def _wrap(
        self, endpoint: Endpoint, action: str = "manage pricing"
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                caller = await self._keys.authenticate(
                    request.headers.get("authorization"), request.headers.get("x-scrawn-mode")
                )
                caller.require(("dash",), action)
                return await endpoint(request, caller)
            except ScrawnError as e:
                return error_response(e)
            except Exception:
                request_id = current_request_id()
                log.exception("internal error (request id %s)", request_id)
                return error_response(
                    InternalError(f"Internal error (request id {request_id})", request_id=request_id)
                )

        return carry(endpoint, run)

    @operation("List the tags", "tags", obj({"tags": array(TAG)}))
    async def list_tags(self, request: Request, caller: Caller) -> Response:
        async with self._db.read() as conn:
            found = await catalog.list_tags(conn, caller.project_id)
        return JSONResponse({"tags": [catalog.tag_json(t) for t in found]})

    @upsert("Create or change a tag", "tags", TAG, obj({"key": NAME, "price": PRICE_IN}))
    async def put_tag(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request)
        key = catalog.check_name("key", body.get("key"))
        price = catalog.check_price("price", body.get("price"))
        async with self._db.write() as conn:
            tag = await catalog.put_tag(conn, caller.project_id, key, price, by=caller.key_id)
        return JSONResponse(catalog.tag_json(tag), status_code=201 if tag.version == 1 else 200)

    @operation("Delete a tag (refused while something names it)", "tags", DELETED)
    async def delete_tag(self, request: Request, caller: Caller) -> Response:
        key = catalog.check_name("key", request.path_params["key"])
        async with self._db.write() as conn:
            await catalog.delete_tag(conn, caller.project_id, key, by=caller.key_id)
        return await self._deleted(caller, "tag", key)

    @operation("List the named expressions", "expressions", obj({"expressions": array(EXPRESSION)}))
    async def list_expressions(self, request: Request, caller: Caller) -> Response:
        async with self._db.read() as conn:
            found = await catalog.current_expressions(conn, caller.project_id, None)
        return JSONResponse({"expressions": [catalog.expression_json(e) for e in found.values()]})

    @upsert(
        "Create or change a named expression",
        "expressions",
        EXPRESSION,
        obj({"name": NAME, "expression": STRING}),
    )
    async def put_expression(self, request: Request, caller: Caller) -> Response:
        return await self._put_named(
            request, caller, "name", catalog.check_name, catalog.put_expression, catalog.expression_json
        )

    async def _put_named(
        self,
        request: Request,
        caller: Caller,
        field: str,
        check: Callable[[str, object], str],
        put: Callable[..., Awaitable[catalog.NamedExpression]],
        to_json: Callable[[catalog.NamedExpression], dict[str, object]],
    ) -> Response:
        """A named expression or an event price: ``field`` names it, ``expression`` is its text; 201 for
        its first version."""
        body = await json_object(request)
        name = check(field, body.get(field))
        text = catalog.check_expression("expression", body.get("expression"))
        async with self._db.write() as conn:
            named = await put(conn, caller.project_id, name, text, by=caller.key_id)
        return JSONResponse(to_json(named), status_code=201 if named.version == 1 else 200)

    @operation("Delete a named expression (refused while something names it)", "expressions", DELETED)
    async def delete_expression(self, request: Request, caller: Caller) -> Response:
        name = catalog.check_name("name", request.path_params["name"])
        async with self._db.write() as conn:
            await catalog.delete_expression(conn, caller.project_id, name, by=caller.key_id)
        return await self._deleted(caller, "expression", name)

    async def _deleted(self, caller: Caller, kind: Kind, name: str) -> Response:
        """The answer to a delete: how many recent events the name priced (counted after the delete
        commits, outside the write transaction, so the scan never holds the write lock)."""
        async with self._db.read() as conn:
            recent = await catalog.recent_uses(conn, caller.project_id, kind, name)
        if recent:
            warning = deleted_warning(kind, name, recent, catalog.RECENT_DAYS)
            log.warning("project %s: %s", caller.project_id, warning)
        return JSONResponse({"deleted": name, "recentEvents": recent})

    @operation("List the event prices", "event prices", obj({"eventPrices": array(EVENT_PRICE)}))
    async def list_event_prices(self, request: Request, caller: Caller) -> Response:
        async with self._db.read() as conn:
            found = await catalog.current_event_prices(conn, caller.project_id, None)
        return JSONResponse({"eventPrices": [catalog.event_price_json(e) for e in found.values()]})

    @upsert(
        "Create or change an event price",
        "event prices",
        EVENT_PRICE,
        obj({"type": EVENT_TYPE, "expression": STRING}),
    )
    async def put_event_price(self, request: Request, caller: Caller) -> Response:
        return await self._put_named(
            request,
            caller,
            "type",
            catalog.check_event_type,
            catalog.put_event_price,
            catalog.event_price_json,
        )

    @operation("Delete an event price", "event prices", None, status=204)
    async def delete_event_price(self, request: Request, caller: Caller) -> Response:
        event_type = catalog.check_event_type("type", request.path_params["type"])
        async with self._db.write() as conn:
            await catalog.delete_event_price(conn, caller.project_id, event_type, by=caller.key_id)
        return Response(status_code=204)

    # Model price overrides (docs/usage.md): USD per million tokens / per minute, from an effective time.

    @operation(
        "List the model price overrides",
        "model prices",
        obj({"modelPrices": array(MODEL_PRICE)}),
        query={"model": STRING},
    )
    async def list_model_prices(self, request: Request, caller: Caller) -> Response:
        model = request.query_params.get("model")
        async with self._db.read() as conn:
            found = await overrides.list_overrides(
                conn, caller.project_id, None if model is None else [overrides.check_model("model", model)]
            )
        return JSONResponse({"modelPrices": [overrides.override_json(o) for o in found]})

    @upsert("Add a model price override (USD)", "model prices", MODEL_PRICE, MODEL_PRICE_IN)
    async def put_model_price(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request)
        model = overrides.check_model("model", body.get("model"))
        provider = overrides.check_provider("provider", body.get("provider"))
        effective_from = overrides.check_time("effectiveFrom", body.get("effectiveFrom"))
        rates = overrides.check_rates(body)
        async with self._db.write() as conn:
            found, created = await overrides.put_override(
                conn,
                caller.project_id,
                model=model,
                provider=provider,
                effective_from=effective_from,
                rates=rates,
                by=caller.key_id,
            )
        return JSONResponse(overrides.override_json(found), status_code=201 if created else 200)

    @operation("Delete a model price override", "model prices", None, status=204)
    async def delete_model_price(self, request: Request, caller: Caller) -> Response:
        async with self._db.write() as conn:
            await overrides.delete_override(
                conn, caller.project_id, request.path_params["id"], by=caller.key_id
            )
        return Response(status_code=204)
