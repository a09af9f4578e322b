"""The keys routes of the JSON API (dash keys only): list, create, revoke — so operators can script key
rotation without the CLI. A key's secret is in the answer to its creation and nowhere else."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrawn.errors import ValidationError
from scrawn.server.api_support import Wrap, answer_json, json_object
from scrawn.server.clock import iso
from scrawn.server.db.engine import Database
from scrawn.server.keys.rpc import MAX_EXPIRY, MIN_EXPIRY
from scrawn.server.keys.service import ROLES, Caller, KeyRecord, KeyService, Role
from scrawn.server.openapi import STRING, TIME, array, nullable, obj, operation

ACTION = "manage API keys"  # "Live keys cannot manage API keys" (403)
# What the handlers below declare (server/openapi.py).
ROLE = {"enum": list(ROLES)}
KEY = obj(
    {
        "id": STRING,
        "name": STRING,
        "role": ROLE,
        "display": STRING,
        "createdAt": TIME,
        "expiresAt": nullable(TIME),
        "revokedAt": nullable(TIME),
        "lastUsedAt": nullable(TIME),
    }
)
NEW_KEY = {**KEY, "required": [*KEY["required"], "key"], "properties": {**KEY["properties"], "key": STRING}}
KEY_IN = obj(
    {"name": {"type": "string", "minLength": 1, "maxLength": 255}, "role": ROLE},
    {"expiresIn": {"type": "integer", "minimum": MIN_EXPIRY, "maximum": MAX_EXPIRY}},
)


def key_json(record: KeyRecord) -> dict[str, Any]:
    return answer_json(
        record,
        KEY["properties"],
        createdAt=iso(record.created_at),
        expiresAt=iso(record.expires_at) or None,
        revokedAt=iso(record.revoked_at) or None,
        lastUsedAt=iso(record.last_used_at) or None,
    )


class KeysApi:
    def __init__(self, db: Database, keys: KeyService) -> None:
        self._db = db
        self._keys = keys

    def routes(self, wrap: Wrap) -> list[Route]:
        return [
            Route("/api/v1/keys", wrap(self.list_keys, ACTION), methods=["GET"]),
            Route("/api/v1/keys", wrap(self.create_key, ACTION), methods=["POST"]),
            Route("/api/v1/keys/{id}/revoke", wrap(self.revoke_key, ACTION), methods=["POST"]),
        ]

    @operation(
        "The project's API keys, oldest first",
        "keys",
        obj({"keys": array(KEY), "nextPageToken": STRING}),
        query={"limit": {"type": "integer", "minimum": 0, "maximum": 500}, "pageToken": STRING},
    )
    async def list_keys(self, request: Request, caller: Caller) -> Response:
        limit = _whole("limit", request.query_params.get("limit", "0"))
        token = request.query_params.get("pageToken", "")
        async with self._db.read() as conn:
            found, next_token = await self._keys.page_keys(conn, caller.project_id, limit, token)
        return JSONResponse({"keys": [key_json(k) for k in found], "nextPageToken": next_token})

    @operation(
        "Create an API key (its secret is in this answer only)", "keys", NEW_KEY, status=201, body=KEY_IN
    )
    async def create_key(self, request: Request, caller: Caller) -> Response:
        body = await json_object(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise ValidationError("name", "must be a string of 1 to 255 characters")
        role = body.get("role")
        if role not in ROLES:
            raise ValidationError("role", 'must be "dash", "live" or "test"')
        expires_in = body.get("expiresIn")
        if expires_in is not None and (
            not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or not MIN_EXPIRY <= expires_in <= MAX_EXPIRY
        ):
            raise ValidationError("expiresIn", f"must be whole seconds from {MIN_EXPIRY} to {MAX_EXPIRY}")
        checked: Role = role
        async with self._db.write() as conn:
            record, key = await self._keys.create_key(conn, caller.project_id, checked, name, expires_in)
        return JSONResponse({**key_json(record), "key": key}, status_code=201)

    @operation("Revoke an API key (idempotent)", "keys", KEY)
    async def revoke_key(self, request: Request, caller: Caller) -> Response:
        async with self._db.write() as conn:
            record = await self._keys.revoke_key(conn, caller.project_id, request.path_params["id"])
        return JSONResponse(key_json(record))


def _whole(field: str, text: str) -> int:
    if not text.isdigit():
        raise ValidationError(field, "must be a whole number")
    return int(text)
