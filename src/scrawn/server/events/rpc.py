"""``event.v1.EventService`` over gRPC, Connect and gRPC-web, and ``usage.v1.UsageService/TrackEvents``
(typed events with per-item outcomes), which ``usage/rpc.py`` mounts: ingest belongs to this domain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from connectrpc.request import RequestContext

from scrawn._proto.event.v1 import event_pb2 as pb
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn.errors import InternalError, ScrawnError, ValidationError
from scrawn.money import format_amount
from scrawn.server.db.engine import Database
from scrawn.server.events import void_service
from scrawn.server.events.intake import (
    EventInput,
    EventInvalid,
    from_register,
    from_stream_item,
    from_tracked,
)
from scrawn.server.events.quarantine.service import KeptForRepricing
from scrawn.server.events.service import EventService
from scrawn.server.events.types import Stored
from scrawn.server.keys.service import Caller, KeyService
from scrawn.server.rpc import INGEST_ROLES, Rpc, authenticate_stream, handler, internal_error, wire

MAX_TRACKED = 1000  # TrackEvents items per call
STREAM_CHUNK = 1000  # items priced and committed together within one stream


class EventRpc(Rpc):
    """EventService, and TrackEvents for UsageService: ingest belongs to this domain."""

    def __init__(self, db: Database, keys: KeyService, events: EventService) -> None:
        super().__init__(db, keys)
        self._events = events

    @handler
    async def register_event(
        self, request: pb.RegisterEventRequest, ctx: RequestContext[Any, Any]
    ) -> pb.RegisterEventResponse:
        caller = await self._caller(ctx, INGEST_ROLES, "ingest events")
        event = from_register(request)
        [outcome] = await self._events.ingest(caller, [event])
        if isinstance(outcome, ScrawnError):  # a kept event too: its detail names it (EventQuarantined)
            raise outcome
        return wire(
            pb.RegisterEventResponse,
            outcome,
            ingestedTimestamp=outcome.ingested_at,
            eventType=event.event_type,
            userId=event.user_id,
            message="Event stored successfully",
        )

    @handler
    async def stream_events(
        self, request: AsyncIterator[pb.StreamEventRequest], ctx: RequestContext[Any, Any]
    ) -> pb.StreamEventResponse:
        caller = await authenticate_stream(self._keys, ctx, request)
        if caller.role not in INGEST_ROLES:
            async for _ in request:
                pass
            caller.require(INGEST_ROLES, "ingest events")
        response = pb.StreamEventResponse()
        chunk: list[tuple[int, EventInput]] = []
        index = 0
        async for item in request:
            try:
                chunk.append((index, from_stream_item(item)))
            except EventInvalid as e:
                _fail(response, index, item.idempotencyKey, e)
            except Exception as e:  # one bad item never aborts the stream
                error = internal_error(e, "StreamEvents item")
                _fail(response, index, item.idempotencyKey, InternalError(error.message))
            index += 1
            if len(chunk) >= STREAM_CHUNK:
                await self._ingest(caller, chunk, response)
                chunk = []
        if chunk:
            await self._ingest(caller, chunk, response)
        response.eventsProcessed = index
        response.eventsFailed = len(response.failures)
        succeeded = index - response.eventsFailed
        response.message = f"Processed {index} events ({succeeded} succeeded, {response.eventsFailed} failed)"
        response.failures.sort(key=lambda f: f.eventIndex)
        return response

    async def _ingest(
        self, caller: Caller, chunk: list[tuple[int, EventInput]], response: pb.StreamEventResponse
    ) -> None:
        try:
            outcomes = await self._events.ingest(caller, [event for _, event in chunk])
        except ScrawnError as e:
            for index, event in chunk:
                _fail(response, index, event.idempotency_key or "", e)
            return
        for (index, event), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, Stored):
                response.duplicates += outcome.duplicate
            else:
                response.quarantined += isinstance(outcome, KeptForRepricing)
                _fail(response, index, event.idempotency_key or "", outcome)

    @handler
    async def void_event(
        self, request: pb.VoidEventRequest, ctx: RequestContext[Any, Any]
    ) -> pb.VoidEventResponse:
        """Any key of the event's mode (a dash key picks it with ``x-scrawn-mode``); another project's or
        mode's event is NOT_FOUND."""
        caller = await self._caller(ctx)
        target = void_service.check_target(request.eventId, request.idempotencyKey)
        reason = void_service.check_reason(request.reason)
        done = await self._scoped("write", caller, void_service.void_event, target, reason, caller.key_id)
        return wire(
            pb.VoidEventResponse, done, amount=format_amount(done.amount), voidedTimestamp=done.voided_at
        )

    @handler
    async def track_events(
        self, request: usage_pb.TrackEventsRequest, ctx: RequestContext[Any, Any]
    ) -> usage_pb.TrackEventsResponse:
        caller = await self._caller(ctx, INGEST_ROLES, "ingest events")
        if len(request.events) > MAX_TRACKED:
            raise ValidationError(
                "events", f"at most {MAX_TRACKED} per call", context="Event validation failed"
            )
        response = usage_pb.TrackEventsResponse()
        valid: list[tuple[int, EventInput]] = []
        for index, item in enumerate(request.events):
            try:
                valid.append((index, from_tracked(item)))
            except EventInvalid as e:
                _failed(response, index, item.idempotencyKey, e)
        outcomes = await self._events.ingest(caller, [event for _, event in valid]) if valid else []
        for (index, event), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, KeptForRepricing):
                response.quarantined += 1
                result = _result(index, "quarantined", outcome.idempotency_key or "", outcome)
                result.eventId = outcome.event_id or ""
                response.results.append(result)
                continue
            if isinstance(outcome, ScrawnError):
                _failed(response, index, event.idempotency_key or "", outcome)
                continue
            status = "duplicate" if outcome.duplicate else "accepted"
            response.results.append(
                usage_pb.TrackEventResult(
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


def _error(error: ScrawnError) -> dict[str, str]:
    """What the answer says of an item that failed or was kept."""
    return {"errorCode": error.stream_code, "message": error.message, "field": error.field or ""}


def _result(index: int, status: str, key: str, error: ScrawnError) -> usage_pb.TrackEventResult:
    return usage_pb.TrackEventResult(index=index, status=status, idempotencyKey=key, **_error(error))


def _failed(response: usage_pb.TrackEventsResponse, index: int, key: str, error: ScrawnError) -> None:
    response.failed += 1
    response.results.append(_result(index, "failed", key, error))


def _fail(response: pb.StreamEventResponse, index: int, key: str, error: ScrawnError) -> None:
    response.failures.append(pb.EventFailure(eventIndex=index, idempotencyKey=key, **_error(error)))
