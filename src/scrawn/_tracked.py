"""The events ``track()`` queues: :class:`TrackedEvent` (a debit) and :class:`TypedTrackedEvent` (a typed
event), validated, keyed and timestamped in the caller; their spool form (JSON) and their stream items."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from scrawn._core import (
    EVENT_CONTEXT,
    MAX_USER_ID,
    UsageType,
    basic_usage,
    check_event_type,
    check_idempotency_key,
    check_product_ref,
    check_units,
    check_user_id,
    metadata_text,
    tracked_event,
)
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn.errors import ValidationError
from scrawn.pricing import Debit, to_debit

# ---------------------------------------------------------------------------------------- tracked events


def _record(*fields: object) -> str:
    """A spool record: a compact JSON array whose first item is the record's version."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class TrackedEvent:
    """An event accepted by ``track()``: validated, keyed and timestamped in the caller, so that every
    delivery attempt — including one by a later process reading the spool — carries the same content."""

    user_id: str
    debit: Debit
    metadata: str | None
    idempotency_key: str
    reported_at: int  # Unix seconds, when track() accepted it
    usage_type: UsageType = "RAW"

    def to_json(self) -> str:
        debit, key = self.debit, self.idempotency_key
        return _record(
            1, self.user_id, debit.kind, debit.value, self.metadata, key, self.reported_at, self.usage_type
        )

    @classmethod
    def from_json(cls, text: str) -> TrackedEvent:
        version, user, kind, value, metadata, key, reported, usage_type = json.loads(text)
        if version != 1:
            raise ValueError(f"unknown spool record version {version}")
        return cls(user, Debit(kind, value), metadata, key, reported, usage_type)


@dataclass(slots=True)
class TypedTrackedEvent:
    """A typed event accepted by ``track(event_type=...)`` (``usage.v1.TrackedEvent``): validated, keyed and
    timestamped in the caller, like :class:`TrackedEvent`, so every delivery attempt is the same content."""

    user_id: str
    event_type: str
    quantity: str  # exact decimal text
    product_ref: str | None
    metadata: str | None
    idempotency_key: str
    reported_at: int  # Unix seconds: when track() accepted it, or the caller's timestamp=

    def to_json(self) -> str:
        key, ref = self.idempotency_key, self.product_ref
        return _record(
            2, self.user_id, self.event_type, self.quantity, ref, self.metadata, key, self.reported_at
        )

    def to_proto(self) -> usage_pb.TrackedEvent:
        key, ref = self.idempotency_key, self.product_ref
        return tracked_event(
            self.event_type, self.user_id, self.quantity, ref, self.metadata, key, timestamp=self.reported_at
        )


AnyTracked = TrackedEvent | TypedTrackedEvent


def tracked_from_json(text: str) -> AnyTracked:
    """A spool record: version 1 is a debit event (the only kind older SDKs wrote), version 2 a typed one."""
    record = json.loads(text)
    if not isinstance(record, list) or not record:
        raise ValueError("not a spool record")
    if record[0] == 1:
        return TrackedEvent.from_json(text)
    if record[0] == 2:
        _, user, event_type, quantity, product, metadata, key, reported = record
        if (
            not all(isinstance(v, str) for v in (user, event_type, quantity, key))
            or type(reported) is not int
        ):
            raise ValueError("malformed typed event record")
        return TypedTrackedEvent(user, event_type, quantity, product, metadata, key, reported)
    raise ValueError(f"unknown spool record version {record[0]!r}")


class _TrackKeys:
    """Idempotency keys for ``track()``: a random 128-bit prefix per process plus a counter — as unique
    as a UUID4 each, at a tenth of the cost (``track()`` must stay cheap). Reset in a forked child."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = f"trk_{uuid.uuid4().hex}_"
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_track_keys = _TrackKeys()


def prepare_tracked(
    user_id: object,
    debit: object,
    metadata: object,
    idempotency_key: object,
    usage_type: UsageType = "RAW",
) -> TrackedEvent:
    """Validate a ``track()`` call. Kept cheap: the common case is a str user and an int amount."""
    if (
        type(user_id) is not str
        or not user_id
        or len(user_id) > MAX_USER_ID
        or "\x00" in user_id
        or (user_id.isspace())
    ):
        check_user_id(user_id)
    return TrackedEvent(
        user_id,  # type: ignore[arg-type]
        to_debit("debit", debit),
        None if metadata is None else metadata_text(metadata),
        _track_keys.next() if idempotency_key is None else check_idempotency_key(idempotency_key),
        int(time.time()),
        usage_type,
    )


MAX_FUTURE_SECONDS: Final = 86_400  # the server refuses a reported time more than a day ahead


def check_timestamp(value: object) -> int:
    """``timestamp=`` of a typed ``track()``: an aware ``datetime`` or Unix seconds (``int``)."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                "timestamp", "must be timezone-aware (e.g. datetime.now(UTC))", context=EVENT_CONTEXT
            )
        seconds = int(value.timestamp())
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        raise ValidationError(
            "timestamp",
            f"must be an aware datetime or Unix seconds (int), not {type(value).__name__}",
            context=EVENT_CONTEXT,
        )
    if not 0 < seconds < 2**31:
        raise ValidationError("timestamp", "must be a time after 1970 and before 2038", context=EVENT_CONTEXT)
    if seconds > time.time() + MAX_FUTURE_SECONDS:
        raise ValidationError("timestamp", "is more than a day in the future", context=EVENT_CONTEXT)
    return seconds


def prepare_typed_tracked_call(
    user_id: object,
    debit: object,
    event_type: object,
    quantity: object,
    product_ref: object,
    metadata: object,
    idempotency_key: object,
    timestamp: object,
) -> TypedTrackedEvent:
    """Validate ``track()`` called with typed-event arguments (exactly one of ``debit`` and
    ``event_type``); errors name the argument."""
    if event_type is None:
        typed_only = (("quantity", quantity), ("product_ref", product_ref), ("timestamp", timestamp))
        given = [name for name, value in typed_only if value is not None]
        if not given:
            raise ValidationError(
                "debit", "is required (or event_type= for a typed event)", context=EVENT_CONTEXT
            )
        raise ValidationError(
            given[0], "is only for typed events: pass event_type= (and no debit=)", context=EVENT_CONTEXT
        )
    if debit is not None:
        raise ValidationError(
            "debit",
            "cannot be combined with event_type= (a typed event is priced by the project's event price)",
            context=EVENT_CONTEXT,
        )
    return TypedTrackedEvent(
        check_user_id(user_id),
        check_event_type(event_type, "event_type"),
        check_units(1 if quantity is None else quantity, "quantity"),
        check_product_ref(product_ref),
        None if metadata is None else metadata_text(metadata),
        _track_keys.next() if idempotency_key is None else check_idempotency_key(idempotency_key),
        int(time.time()) if timestamp is None else check_timestamp(timestamp),
    )


def stream_item(event: TrackedEvent) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE,
        userId=event.user_id,
        reportedTimestamp=event.reported_at,
        basicUsage=basic_usage(event.debit, event.metadata, event.usage_type),
        idempotencyKey=event.idempotency_key,
    )
