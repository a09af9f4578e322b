"""``query.v1.QueryService``: any key; dash keys pick the mode with ``x-scrawn-mode``."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.query.v1 import query_pb2 as pb
from scrawn.server.query.service import query_events
from scrawn.server.rpc import Rpc, handler


class QueryRpc(Rpc):
    @handler
    async def query_events(
        self, request: pb.QueryEventsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.QueryEventsResponse:
        caller = await self._caller(ctx)
        return await self._scoped("read", caller, query_events, request)
