"""The OpenAPI document of the JSON API (``GET /api/v1/openapi.json``), built from the route table.

Each handler declares its operation next to itself with ``@operation(...)`` (summary, tag, query parameters,
request body and answer as JSON Schema); the JSON API's wrapper carries that declaration onto the endpoint
it mounts, and ``document`` reads it back from every ``/api/v1`` route. A route without one fails the build
of the document, so the document cannot leave a route out or name one that is not served."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.routing import Route

Schema = dict[str, Any]
F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "/api/v1"
_ATTR = "__scrawn_operation__"
_PATH_PARAM = re.compile(r"{(\w+)}")

# Building blocks of the schemas the handlers declare.
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
DECIMAL: Schema = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "an exact decimal"}
TIME: Schema = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
UNIX_MS: Schema = {"type": "integer", "description": "Unix milliseconds"}
MODE: Schema = {"type": "string", "enum": ["live", "test"]}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """An object with these properties (``required`` ones always present); others are allowed."""
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


ERROR = obj({"code": STRING, "message": STRING, "field": nullable(STRING)})


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    response: Schema | None  # the answer's body; None: no body
    status: int = 200
    body: Schema | None = None  # the request's JSON body
    query: Mapping[str, Schema] = field(default_factory=dict)  # optional query parameters
    also: Iterable[int] = ()  # other success statuses with the same body (201 on create, 200 on update)
    public: bool = False  # no key needed


def operation(
    summary: str,
    tag: str,
    response: Schema | None,
    *,
    status: int = 200,
    body: Schema | None = None,
    query: Mapping[str, Schema] | None = None,
    also: Iterable[int] = (),
    public: bool = False,
) -> Callable[[F], F]:
    """Declare a JSON API handler's operation for the OpenAPI document."""
    declared = Operation(summary, tag, response, status, body, dict(query or {}), tuple(also), public)

    def mark(handler: F) -> F:
        setattr(handler, _ATTR, declared)
        return handler

    return mark


def upsert(
    summary: str, tag: str, response: Schema, body: Schema, query: Mapping[str, Schema] | None = None
) -> Callable[[F], F]:
    """A create-or-change operation: 201 with the thing when it is new, 200 when it changed."""
    return operation(summary, tag, response, status=201, also=[200], body=body, query=query)


def carry(source: Callable[..., Any], target: F) -> F:
    """Copy a handler's declaration onto the endpoint that wraps it (a bound method reads its function's)."""
    declared = getattr(source, _ATTR, None)
    if declared is not None:
        setattr(target, _ATTR, declared)
    return target


def declared(route: Route) -> Operation | None:
    found: Operation | None = getattr(route.endpoint, _ATTR, None)
    return found


def document(routes: Iterable[Route], version: str) -> Schema:
    """The OpenAPI 3.1 document of every ``/api/v1`` route; ValueError names a route without a declaration."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not route.path.startswith(PREFIX):
            continue
        op = declared(route)
        if op is None:
            raise ValueError(f"{sorted(route.methods or ())} {route.path} declares no OpenAPI operation")
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(route.path, method, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Scrawn JSON API",
            "version": version,
            "description": "Dash keys only (`authorization: Bearer scrn_dash_…`); the mode comes from "
            "`x-scrawn-mode` (live by default). Amounts are decimal strings. See docs/api.md.",
        },
        "components": {
            "securitySchemes": {"dashKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR},
        },
        "security": [{"dashKey": []}],
        "paths": paths,
    }


def _operation(path: str, method: str, op: Operation) -> Schema:
    params: list[Schema] = [
        {"name": name, "in": "path", "required": True, "schema": STRING} for name in _PATH_PARAM.findall(path)
    ]
    params += [{"name": name, "in": "query", "schema": schema} for name, schema in op.query.items()]
    if not op.public:
        params.append({"name": "x-scrawn-mode", "in": "header", "schema": MODE})
    error = {"description": "refused: `code`, `message` and the `field` at fault", "content": _json_of_ref()}
    answer: Schema = {"description": op.summary}
    if op.response is not None:
        answer["content"] = {"application/json": {"schema": op.response}}
    responses: dict[str, Any] = {str(s): answer for s in (op.status, *op.also)}
    responses["4XX"] = error
    name = _PATH_PARAM.sub(r"by_\1", path[len(PREFIX) + 1 :]).replace("/", "_").replace("-", "_")
    found: Schema = {
        "operationId": f"{method.lower()}_{name}",
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        found["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    if op.public:
        found["security"] = []
    return found


def _json_of_ref() -> Schema:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
