"""``usage.v1.UsageService/TrackEvents``: batches of typed events with per-item outcomes."""

from __future__ import annotations

from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.usage.v1 import usage_pb2 as pb
from scrawn.errors import ScrawnError, ValidationError
from scrawn.money import format_amount
from scrawn.server.events.intake import EventInput, EventInvalid, from_tracked
from scrawn.server.events.quarantine import KeptForRepricing
from scrawn.server.events.rpc import INGEST_ROLES
from scrawn.server.events.service import EventService
from scrawn.server.keys.service import KeyService
from scrawn.server.rpc import authenticate, handler

MAX_ITEMS = 1000


class UsageRpc:
    def __init__(self, keys: KeyService, events: EventService) -> None:
        self._keys = keys
        self._events = events

    @handler
    async def track_events(
        self, request: pb.TrackEventsRequest, ctx: RequestContext[Any, Any]
    ) -> pb.TrackEventsResponse:
        caller = await authenticate(self._keys, ctx)
        caller.require(INGEST_ROLES, "ingest events")
        if len(request.events) > MAX_ITEMS:
            raise ValidationError(
                "events", f"at most {MAX_ITEMS} per call", context="Event validation failed"
            )
        response = pb.TrackEventsResponse()
        valid: list[tuple[int, EventInput]] = []
        for index, item in enumerate(request.events):
            try:
                valid.append((index, from_tracked(item)))
            except EventInvalid as e:
                _failed(response, index, item.idempotencyKey, e.stream_code, e.message)
        outcomes = await self._events.ingest(caller, [event for _, event in valid]) if valid else []
        for (index, event), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, KeptForRepricing):
                response.quarantined += 1
                response.results.append(
                    pb.TrackEventResult(
                        index=index,
                        status="quarantined",
                        eventId=outcome.event_id or "",
                        idempotencyKey=outcome.idempotency_key or "",
                        errorCode=outcome.stream_code,
                        message=outcome.message,
                    )
                )
                continue
            if isinstance(outcome, ScrawnError):
                _failed(response, index, event.idempotency_key or "", outcome.stream_code, outcome.message)
                continue
            status = "duplicate" if outcome.duplicate else "accepted"
            response.results.append(
                pb.TrackEventResult(
                    index=index,
                    status=status,
                    eventId=outcome.event_id,
                    idempotencyKey=outcome.idempotency_key,
                    amount=format_amount(outcome.debit),
                )
            )
            if outcome.duplicate:
                response.duplicates += 1
            else:
                response.accepted += 1
        response.results.sort(key=lambda r: r.index)
        return response


def _failed(response: pb.TrackEventsResponse, index: int, key: str, code: str, message: str) -> None:
    response.failed += 1
    response.results.append(
        pb.TrackEventResult(index=index, status="failed", idempotencyKey=key, errorCode=code, message=message)
    )
