"""``auth.v1.AuthService``: dash keys create API keys; the role comes from ``x-scrawn-role``."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.auth.v1 import auth_pb2 as pb
from scrawn.errors import ValidationError
from scrawn.server.clock import iso
from scrawn.server.keys.service import Role
from scrawn.server.rpc import Rpc, handler

ROLE_HEADER: dict[str, Role] = {"dashboard": "dash", "production": "live", "test": "test"}
MIN_EXPIRY, MAX_EXPIRY = 60, 31_536_000


class AuthRpc(Rpc):
    @handler
    async def create_api_key(
        self, request: pb.CreateAPIKeyRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CreateAPIKeyResponse:
        caller = await self._caller(ctx, ("dash",), "create API keys")
        role_name = ctx.request_headers.get("x-scrawn-role") or "production"
        if role_name not in ROLE_HEADER:
            raise ValidationError(
                "x-scrawn-role",
                'must be "dashboard", "production" or "test"',
                context="API key validation failed",
            )
        if not MIN_EXPIRY <= request.expiresIn <= MAX_EXPIRY:
            raise ValidationError(
                "expiresIn",
                f"must be {MIN_EXPIRY} to {MAX_EXPIRY} seconds",
                context="API key validation failed",
            )
        async with self._db.write() as conn:
            record, key = await self._keys.create_key(
                conn, caller.project_id, ROLE_HEADER[role_name], request.name, request.expiresIn
            )
        return pb.CreateAPIKeyResponse(
            apiKeyId=record.id,
            apiKey=key,
            name=record.name,
            createdAt=iso(record.created_at),
            expiresAt=iso(record.expires_at),
        )
