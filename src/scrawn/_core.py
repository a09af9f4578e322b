"""The sans-I/O core of the event calls shared by :class:`~scrawn.Scrawn` and :class:`~scrawn.AsyncScrawn`:
validation of every event input (naming the field, before any network call), building the wire messages
of ``RegisterEvent`` and ``TrackEvents``, and reading their answers. Options live in :mod:`scrawn._config`,
retries in :mod:`scrawn._retry`, the events ``track()`` queues in :mod:`scrawn._tracked`."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from scrawn._codes import INTERNAL_ERROR, KEPT_FOR_REPRICING, STORAGE_FAILURE
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn.errors import (
    AlreadyExistsError,
    EventQuarantinedError,
    InternalError,
    InvalidArgumentError,
    ScrawnError,
    UnavailableError,
    ValidationError,
)
from scrawn.money import MAX_MICROS, MICROS_PER_UNIT
from scrawn.pricing import Debit, format_number, parse_number, to_debit

__all__ = [
    "EventResult",
]

MAX_USER_ID: Final = 256
MAX_IDEMPOTENCY_KEY: Final = 255
MAX_METADATA_BYTES: Final = 16 * 1024

REGISTER_EVENT: Final = "/event.v1.EventService/RegisterEvent"
STREAM_EVENTS: Final = "/event.v1.EventService/StreamEvents"
TRACK_EVENTS: Final = "/usage.v1.UsageService/TrackEvents"
EVENT_TYPE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_EVENT_TYPE: Final = 128
MAX_PRODUCT_REF: Final = 255

EVENT_CONTEXT: Final = "Event validation failed"

UsageType = Literal["RAW", "MIDDLEWARE_CALL"]

# ------------------------------------------------------------------------------------------ validation


def check_user_id(user_id: object, field_name: str = "user_id", context: str = EVENT_CONTEXT) -> str:
    if not isinstance(user_id, str):
        raise ValidationError(field_name, f"must be a string, not {type(user_id).__name__}", context=context)
    if not user_id or user_id.isspace():
        raise ValidationError(field_name, "must be a non-empty string", context=context)
    if len(user_id) > MAX_USER_ID:
        raise ValidationError(field_name, f"must be at most {MAX_USER_ID} characters", context=context)
    if "\x00" in user_id:
        raise ValidationError(field_name, "must not contain NUL characters", context=context)
    return user_id


def key_or_new(key: object, context: str = EVENT_CONTEXT) -> str:
    """The given idempotency key, checked, or a new UUID (one per logical call, reused by its retries)."""
    return str(uuid.uuid4()) if key is None else check_idempotency_key(key, context)


def check_idempotency_key(key: object, context: str = EVENT_CONTEXT) -> str:
    if not isinstance(key, str):
        raise ValidationError(
            "idempotency_key", f"must be a string, not {type(key).__name__}", context=context
        )
    if not key or key.isspace():
        raise ValidationError("idempotency_key", "must be a non-empty string", context=context)
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError(
            "idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters", context=context
        )
    if "\x00" in key:
        raise ValidationError("idempotency_key", "must not contain NUL characters", context=context)
    return key


def check_event_id(event_id: object) -> str:
    if isinstance(event_id, uuid.UUID):
        return str(event_id)
    if not isinstance(event_id, str):
        raise ValidationError(
            "event_id", f"must be a UUID, not {type(event_id).__name__}", context=EVENT_CONTEXT
        )
    try:
        return str(uuid.UUID(event_id))
    except ValueError:
        raise ValidationError("event_id", "must be a UUID", context=EVENT_CONTEXT) from None


def metadata_text(metadata: object, field_name: str = "metadata") -> str | None:
    """A dict (or JSON object text) as compact JSON text, at most 16 KiB of UTF-8."""
    if metadata is None:
        return None
    if isinstance(metadata, Mapping):
        try:
            text = json.dumps(dict(metadata), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            raise ValidationError(
                field_name, f"must be JSON-serialisable ({_clip(str(e))})", context=EVENT_CONTEXT
            ) from None
    elif isinstance(metadata, str):
        text = metadata
        if "\x00" in text:
            raise ValidationError(field_name, "must not contain NUL characters", context=EVENT_CONTEXT)
        try:
            parsed = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise ValidationError(field_name, "must be a JSON object", context=EVENT_CONTEXT) from None
        if not isinstance(parsed, dict):
            raise ValidationError(field_name, "must be a JSON object", context=EVENT_CONTEXT)
    else:
        raise ValidationError(
            field_name,
            f"must be a dict or JSON object text, not {type(metadata).__name__}",
            context=EVENT_CONTEXT,
        )
    if len(text) > MAX_METADATA_BYTES // 4 and len(text.encode()) > MAX_METADATA_BYTES:
        raise ValidationError(
            field_name, f"must be at most {MAX_METADATA_BYTES} bytes as JSON", context=EVENT_CONTEXT
        )
    return text


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_debit(debit: object, field_name: str = "debit") -> Debit:
    """A basic-usage debit: a number, ``tag(...)`` or an expression without placeholders."""
    return to_debit(field_name, debit)


# ------------------------------------------------------------------------------------- basic events


@dataclass(frozen=True)
class PreparedEvent:
    """A validated basic-usage event, ready to be sent (and re-sent, identically) by every retry."""

    user_id: str
    debit: Debit
    metadata: str | None
    event_id: str | None
    idempotency_key: str
    usage_type: UsageType = "RAW"


def prepare_basic_event(
    user_id: object,
    debit: object,
    metadata: object,
    event_id: object,
    idempotency_key: object,
    usage_type: UsageType = "RAW",
) -> PreparedEvent:
    return PreparedEvent(
        user_id=check_user_id(user_id),
        debit=check_debit(debit),
        metadata=metadata_text(metadata),
        event_id=None if event_id is None else check_event_id(event_id),
        idempotency_key=key_or_new(idempotency_key),
        usage_type=usage_type,
    )


def basic_usage(debit: Debit, metadata: str | None, usage_type: UsageType) -> ev.BasicUsage:
    usage = ev.BasicUsage(basicUsageType=ev.MIDDLEWARE_CALL if usage_type == "MIDDLEWARE_CALL" else ev.RAW)
    if debit.kind == "amount":
        usage.amount = int(debit.value)
    elif debit.kind == "tag":
        usage.tag = str(debit.value)
    else:
        usage.expr = str(debit.value)
    if metadata is not None:
        usage.metadata = metadata
    return usage


def register_request(event: PreparedEvent) -> ev.RegisterEventRequest:
    # No reportedTimestamp: the server stamps the event, and a retry (or a repeat of the same
    # idempotency key by the application) carries exactly the same content, so it is a duplicate.
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE,
        userId=event.user_id,
        basicUsage=basic_usage(event.debit, event.metadata, event.usage_type),
        eventId=event.event_id or "",
        idempotencyKey=event.idempotency_key,
    )


@dataclass(frozen=True, slots=True)
class EventResult:
    """What the server answered for one event.

    ``duplicate`` is true when the idempotency key had already been stored with the same content (the
    original ``event_id`` is returned). When an ``on_error`` hook handled a failure instead of letting
    it raise, ``error`` holds it and ``ok`` is false."""

    event_id: str
    idempotency_key: str
    duplicate: bool = False
    ingested_at: int = 0  # Unix ms (RegisterEvent answers it)
    error: ScrawnError | None = None
    amount: Decimal | None = None  # minor units charged (TrackEvents answers it)

    @property
    def ok(self) -> bool:
        return self.error is None


def event_result(response: ev.RegisterEventResponse, event: PreparedEvent) -> EventResult:
    return EventResult(
        event_id=response.eventId,
        idempotency_key=response.idempotencyKey or event.idempotency_key,
        duplicate=response.duplicate,
        ingested_at=response.ingestedTimestamp,
    )


def failed_result(event: PreparedEvent | PreparedTypedEvent, error: ScrawnError) -> EventResult:
    return EventResult(event_id=event.event_id or "", idempotency_key=event.idempotency_key, error=error)


# ------------------------------------------------------------------------------------------ typed events


@dataclass(frozen=True)
class PreparedTypedEvent:
    """A validated typed event (``usage.v1.UsageService/TrackEvents``), priced by the project's event price
    for its type (an expression that may use ``quantity()``)."""

    type: str
    user_id: str
    quantity: str
    product_ref: str | None
    metadata: str | None
    event_id: str | None
    idempotency_key: str


def check_event_type(value: object, field_name: str = "type") -> str:
    if not isinstance(value, str):
        raise ValidationError(
            field_name, f"must be a string, not {type(value).__name__}", context=EVENT_CONTEXT
        )
    if not value or len(value) > MAX_EVENT_TYPE or not EVENT_TYPE_PATTERN.fullmatch(value):
        raise ValidationError(
            field_name,
            f"must match ^[A-Za-z0-9][A-Za-z0-9._:-]*$ and be at most {MAX_EVENT_TYPE} characters",
            context=EVENT_CONTEXT,
        )
    return value


def check_product_ref(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            "product_ref", f"must be a string, not {type(value).__name__}", context=EVENT_CONTEXT
        )
    if not value or len(value) > MAX_PRODUCT_REF or "\x00" in value:
        raise ValidationError(
            "product_ref", f"must be 1 to {MAX_PRODUCT_REF} characters, without NUL", context=EVENT_CONTEXT
        )
    return value


def check_units(value: object, field_name: str = "units") -> str:
    """A quantity: a finite number ≥ 0 (``int``, ``Decimal``, decimal ``str``, ``float``; not ``bool``)."""
    try:
        number = parse_number(field_name, value)
    except ValidationError as e:
        raise ValidationError(field_name, e.problem, context=EVENT_CONTEXT) from None
    if number * MICROS_PER_UNIT > MAX_MICROS:
        raise ValidationError(field_name, "is too large", context=EVENT_CONTEXT)
    return format_number(number)


def prepare_typed_event(
    type_: object,
    customer_ref: object,
    units: object,
    product_ref: object,
    metadata: object,
    event_id: object,
    idempotency_key: object,
) -> PreparedTypedEvent:
    return PreparedTypedEvent(
        type=check_event_type(type_),
        user_id=check_user_id(customer_ref, "customer_ref"),
        quantity=check_units(units),
        product_ref=check_product_ref(product_ref),
        metadata=metadata_text(metadata),
        event_id=None if event_id is None else check_event_id(event_id),
        idempotency_key=key_or_new(idempotency_key),
    )


def tracked_event(
    event_type: str,
    user_id: str,
    quantity: str,
    product_ref: str | None,
    metadata: str | None,
    idempotency_key: str,
    *,
    event_id: str | None = None,
    timestamp: int = 0,
) -> usage_pb.TrackedEvent:
    """One typed event on the wire: ``create_event``'s (with its ``event_id``) and ``track(event_type=...)``'s
    (with the time it was tracked)."""
    item = usage_pb.TrackedEvent(
        type=event_type,
        userId=user_id,
        quantity=quantity,
        productRef=product_ref or "",
        idempotencyKey=idempotency_key,
        eventId=event_id or "",
        timestamp=timestamp,
    )
    if metadata is not None:
        item.metadata = metadata
    return item


def track_events_request(event: PreparedTypedEvent) -> usage_pb.TrackEventsRequest:
    key, ref = event.idempotency_key, event.product_ref
    item = tracked_event(
        event.type, event.user_id, event.quantity, ref, event.metadata, key, event_id=event.event_id
    )
    return usage_pb.TrackEventsRequest(events=[item])


# Per-item failure codes (StreamEvents' EventFailure.errorCode, TrackEvents' TrackEventResult.errorCode;
# the vocabulary is scrawn._codes) that are not INVALID_ARGUMENT.
_ITEM_ERRORS: Final[dict[str, type[ScrawnError]]] = {
    STORAGE_FAILURE: UnavailableError,
    INTERNAL_ERROR: InternalError,
}


def item_error(
    code: str,
    message: str,
    *,
    idempotency_key: str | None = None,
    event_id: str | None = None,
    quarantined: bool = False,
    field: str = "",
) -> ScrawnError:
    """The typed error for one failed item of a batch call, with the field the server sent (read from the
    message only for a server that predates ``field``). An item the server kept for repricing
    (``KEPT_FOR_REPRICING``, or ``quarantined``) is an :class:`~scrawn.errors.EventQuarantinedError`:
    delivered, not to be retried."""
    from scrawn._connect import field_from_message, request_id_from

    text = message or code
    field_name = field or field_from_message(text)
    full = f"{code}: {text}" if code else text
    if quarantined or code == KEPT_FOR_REPRICING:
        return EventQuarantinedError(  # the server's words, as the unary answer carries them
            text,
            field=field_name,
            request_id=request_id_from(text),
            event_id=event_id or None,
            idempotency_key=idempotency_key or None,
        )
    cls = _ITEM_ERRORS.get(code, InvalidArgumentError)
    if field_name == "idempotencyKey" and "already used" in text:
        cls = AlreadyExistsError
    return cls(full, field=field_name, request_id=request_id_from(text))


def is_quarantined(error: ScrawnError) -> bool:
    """The server kept the event for repricing: delivered (not lost, not to be sent again)."""
    return isinstance(error, EventQuarantinedError)


def typed_result(response: usage_pb.TrackEventsResponse, event: PreparedTypedEvent) -> EventResult:
    """The one item's outcome; a failed item raises its typed error (retryable when it is STORAGE_FAILURE,
    :class:`~scrawn.errors.EventQuarantinedError` when the server kept it for repricing)."""
    if len(response.results) != 1:
        raise InternalError(f"TrackEvents answered {len(response.results)} results for 1 event")
    result = response.results[0]
    if result.status == "quarantined":
        raise item_error(
            result.errorCode or KEPT_FOR_REPRICING,
            result.message,
            idempotency_key=result.idempotencyKey or event.idempotency_key,
            event_id=result.eventId,
            quarantined=True,
            field=result.field,
        )
    if result.status == "failed":
        raise item_error(result.errorCode, result.message, field=result.field)
    return EventResult(
        event_id=result.eventId,
        idempotency_key=result.idempotencyKey or event.idempotency_key,
        duplicate=result.status == "duplicate",
        amount=Decimal(result.amount) if result.amount else None,
    )
