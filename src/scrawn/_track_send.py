"""Sending a batch of tracked events and reading what the server did with each: debit events through
``event.v1.EventService/StreamEvents``, typed ones through ``usage.v1.UsageService/TrackEvents``; every
item settles as an :class:`ItemOutcome` (accepted, or the error that refused it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeVar

from scrawn._codes import KEPT_FOR_REPRICING
from scrawn._config import ClientConfig, headers
from scrawn._connect import Transport
from scrawn._core import STREAM_EVENTS, TRACK_EVENTS, item_error
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._retry import is_retryable
from scrawn._tracked import AnyTracked, TrackedEvent, TypedTrackedEvent, stream_item
from scrawn.errors import (
    InternalError,
    ScrawnError,
)

R = TypeVar("R")
TRACK_EVENTS_MAX: Final = 1000  # items per TrackEvents call (the server's limit)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What the server said about one tracked event. ``error is None``: stored (or a duplicate)."""

    error: ScrawnError | None = None
    duplicate: bool = False


ACCEPTED: Final = ItemOutcome()


def send_batch(transport: Transport, config: ClientConfig, events: Sequence[AnyTracked]) -> list[ItemOutcome]:
    """Deliver ``events``; one outcome per event, in order. Debit events go in one StreamEvents call, typed
    events in TrackEvents calls of at most 1,000. Raises a retryable :class:`ScrawnError` when a call failed
    as a whole and may be repeated (the batch is then sent again: what was stored answers as duplicates);
    a call refused for good gives its items that error as their outcome."""
    outcomes: list[ItemOutcome | None] = [None] * len(events)
    debit = [(i, e) for i, e in enumerate(events) if isinstance(e, TrackedEvent)]
    typed = [(i, e) for i, e in enumerate(events) if isinstance(e, TypedTrackedEvent)]
    head, timeout = headers(config), config.timeout
    if debit:
        items = [stream_item(e) for _, e in debit]
        stream = partial(transport.client_stream, STREAM_EVENTS, items, ev.StreamEventResponse, head, timeout)
        _send_part(outcomes, debit, stream, stream_outcomes)
    for start in range(0, len(typed), TRACK_EVENTS_MAX):
        part = typed[start : start + TRACK_EVENTS_MAX]
        request = usage_pb.TrackEventsRequest(events=[e.to_proto() for _, e in part])
        track = partial(transport.unary, TRACK_EVENTS, request, usage_pb.TrackEventsResponse, head, timeout)
        _send_part(outcomes, part, track, typed_outcomes)
    missing = ItemOutcome(InternalError("the track() worker cannot send this kind of event"))
    return [missing if o is None else o for o in outcomes]


def _send_part(
    outcomes: list[ItemOutcome | None],
    part: Sequence[tuple[int, AnyTracked]],
    call: Callable[[], R],
    read: Callable[[R, int], list[ItemOutcome]],
) -> None:
    """One call for the events of ``part`` (``(index, event)`` pairs), setting their outcomes: ``read``
    from the answer, or the call's error for each when it was refused for good. A retryable failure is
    raised: the whole batch is sent again."""
    try:
        answer = call()
    except ScrawnError as error:
        if is_retryable(error):
            raise
        for i, _ in part:
            outcomes[i] = ItemOutcome(error)
    else:
        for (i, _), outcome in zip(part, read(answer, len(part)), strict=True):
            outcomes[i] = outcome


def stream_outcomes(response: ev.StreamEventResponse, count: int) -> list[ItemOutcome]:
    """Per-item outcomes of a StreamEvents call of ``count`` items (only failures are listed)."""
    outcomes = [ACCEPTED] * count
    for failure in response.failures:
        index = failure.eventIndex
        if 0 <= index < count:
            error = item_error(
                failure.errorCode,
                failure.message,
                idempotency_key=failure.idempotencyKey or None,
                field=failure.field,
            )
            outcomes[index] = ItemOutcome(error)
    return outcomes


def typed_outcomes(response: usage_pb.TrackEventsResponse, count: int) -> list[ItemOutcome]:
    """Per-item outcomes of a TrackEvents call of ``count`` items (every item has a result by index)."""
    outcomes: list[ItemOutcome | None] = [None] * count
    for result in response.results:
        index = result.index
        if not 0 <= index < count:
            continue
        if result.status in ("accepted", "duplicate"):
            outcomes[index] = ItemOutcome(duplicate=result.status == "duplicate")
        elif result.status == "quarantined":
            error = item_error(
                result.errorCode or KEPT_FOR_REPRICING,
                result.message,
                idempotency_key=result.idempotencyKey,
                event_id=result.eventId,
                quarantined=True,
                field=result.field,
            )
            outcomes[index] = ItemOutcome(error)
        elif result.status == "failed":
            error = item_error(
                result.errorCode, result.message, idempotency_key=result.idempotencyKey, field=result.field
            )
            outcomes[index] = ItemOutcome(error)
        else:
            outcomes[index] = ItemOutcome(
                InternalError(f"TrackEvents answered status {result.status[:40]!r}")
            )
    missing = ItemOutcome(InternalError("TrackEvents answered no result for this event"))
    return [missing if o is None else o for o in outcomes]


Sender = Callable[[Sequence[AnyTracked]], list[ItemOutcome]]
"""How a tracker sends a batch (the AI buffer's sender speaks ``StreamEvents`` AI items)."""

__all__ = ["ACCEPTED", "ItemOutcome", "Sender", "send_batch", "stream_outcomes", "typed_outcomes"]
