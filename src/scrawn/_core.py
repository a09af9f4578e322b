"""The sans-I/O core shared by :class:`~scrawn.Scrawn` and :class:`~scrawn.AsyncScrawn`: options and their
defaults, headers, validation of every input (naming the field, before any network call), building the
wire messages, reading responses, and retry decisions. Nothing here touches a socket, a file or a clock
other than ``time.time()`` for event timestamps."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._version import __version__
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

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "ClientConfig",
    "ErrorContext",
    "EventResult",
    "TrackedEvent",
    "TypedTrackedEvent",
]

VERSION: Final = __version__
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8069"
ENV_API_KEY: Final = "SCRAWN_API_KEY"
ENV_BASE_URL: Final = "SCRAWN_BASE_URL"
API_KEY_PATTERN: Final = re.compile(r"scrn_(dash|live|test)_[A-Za-z0-9]{32}")
MAX_USER_ID: Final = 256
MAX_IDEMPOTENCY_KEY: Final = 255
MAX_METADATA_BYTES: Final = 16 * 1024
RETRYABLE_CODES: Final = frozenset({"unavailable", "resource_exhausted", "deadline_exceeded"})
RETRY_AFTER_CODES: Final = frozenset({"unavailable", "resource_exhausted"})
RETRY_AFTER_MAX: Final = 60.0  # the longest server-requested wait honoured before a retry, in seconds

REGISTER_EVENT: Final = "/event.v1.EventService/RegisterEvent"
STREAM_EVENTS: Final = "/event.v1.EventService/StreamEvents"
TRACK_EVENTS: Final = "/usage.v1.UsageService/TrackEvents"
EVENT_TYPE_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_EVENT_TYPE: Final = 128
MAX_PRODUCT_REF: Final = 255

EVENT_CONTEXT: Final = "Event validation failed"
CONFIG_CONTEXT: Final = "Invalid client option"

UsageType = Literal["RAW", "MIDDLEWARE_CALL"]
ErrorHook = Callable[[ScrawnError, "ErrorContext"], object]
"""``on_error(error, context)``; an awaitable it returns is awaited, any other value ignored."""

# --------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ClientConfig:
    """Validated client options. ``api_key`` is kept out of ``repr``."""

    api_key: str = field(repr=False)
    base_url: str
    timeout: float | None
    max_retries: int
    on_error: ErrorHook | None
    backoff_base: float
    backoff_max: float
    spool_path: str | None
    spool_fsync: bool
    buffer_size: int
    batch_size: int
    flush_interval: float
    exit_timeout: float
    # The caller's httpx.Client for the background delivery thread (track(), middleware, track_ai):
    # Scrawn's http_client, AsyncScrawn's sync_http_client; None: the thread makes its own.
    worker_http: httpx.Client | None = field(default=None, repr=False, compare=False)

    @property
    def key_role(self) -> str:
        return self.api_key.split("_")[1]

    def masked_key(self) -> str:
        return f"scrn_{self.key_role}_{'*' * 8}"


def resolve_config(
    api_key: str | None,
    base_url: str | None,
    *,
    timeout: float | None,
    max_retries: int,
    on_error: ErrorHook | None,
    backoff_base: float = 0.25,
    backoff_max: float = 8.0,
    spool_path: str | os.PathLike[str] | None = None,
    spool_fsync: bool = False,
    buffer_size: int = 100_000,
    batch_size: int = 500,
    flush_interval: float = 0.5,
    exit_timeout: float = 5.0,
    worker_http: httpx.Client | None = None,
) -> ClientConfig:
    key = check_api_key(api_key if api_key is not None else os.environ.get(ENV_API_KEY))
    url = check_base_url(
        base_url if base_url is not None else os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    )
    if timeout is not None:
        timeout = _positive("timeout", timeout)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 100:
        raise ValidationError("max_retries", "must be an int from 0 to 100", context=CONFIG_CONTEXT)
    if on_error is not None and not callable(on_error):
        raise ValidationError(
            "on_error", "must be callable as on_error(error, context)", context=CONFIG_CONTEXT
        )
    path: str | None = None
    if spool_path is not None:
        if not isinstance(spool_path, str | os.PathLike):
            raise ValidationError("spool_path", "must be a path (str or os.PathLike)", context=CONFIG_CONTEXT)
        path = os.fspath(spool_path)
        if not path or "\x00" in path:
            raise ValidationError("spool_path", "must be a non-empty path", context=CONFIG_CONTEXT)
    for name, value in (("buffer_size", buffer_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000_000:
            raise ValidationError(name, "must be a positive int", context=CONFIG_CONTEXT)
    if batch_size > 10_000:
        raise ValidationError("batch_size", "must be at most 10000", context=CONFIG_CONTEXT)
    return ClientConfig(
        api_key=key,
        base_url=url,
        timeout=timeout,
        max_retries=max_retries,
        on_error=on_error,
        backoff_base=_positive("backoff_base", backoff_base),
        backoff_max=_positive("backoff_max", backoff_max),
        spool_path=path,
        spool_fsync=bool(spool_fsync),
        buffer_size=buffer_size,
        batch_size=batch_size,
        flush_interval=_positive("flush_interval", flush_interval),
        exit_timeout=_positive("exit_timeout", exit_timeout),
        worker_http=worker_http,
    )


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(name, "must be a positive finite number of seconds", context=CONFIG_CONTEXT)
    return float(value)


def check_hook(on_error: object) -> ErrorHook | None:
    if on_error is not None and not callable(on_error):
        raise ValidationError(
            "on_error", "must be callable as on_error(error, context)", context=CONFIG_CONTEXT
        )
    return on_error


def check_wait(timeout: object) -> float | None:
    """A ``flush()``/``close()`` timeout: ``None`` or a number of seconds ≥ 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValidationError(
            "timeout", "must be None or a number of seconds >= 0", context="Invalid argument"
        )
    return float(timeout)


def deadline(timeout: float | None) -> float | None:
    """The monotonic time a ``flush()``/``close()`` budget of ``timeout`` seconds ends (``None``: none)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline_: float | None) -> float | None:
    """Seconds left of a budget from :func:`deadline` (``None``: the callee's own default)."""
    return None if deadline_ is None else max(0.0, deadline_ - time.monotonic())


def check_api_key(key: object) -> str:
    """The key's shape, checked locally as the TS SDK does. Never echoes the key."""
    if key is None or key == "":
        raise ValidationError(
            "api_key", f"is required: pass api_key= or set {ENV_API_KEY}", context=CONFIG_CONTEXT
        )
    if not isinstance(key, str):
        raise ValidationError(
            "api_key", f"must be a string, not {type(key).__name__}", context=CONFIG_CONTEXT
        )
    if not API_KEY_PATTERN.fullmatch(key):
        raise ValidationError(
            "api_key",
            f"must look like scrn_<dash|live|test>_ followed by 32 letters or digits "
            f"(42 characters; the value given has {len(key)} and is not shown)",
            context=CONFIG_CONTEXT,
        )
    return key


def check_base_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(
            "base_url", "must be a non-empty URL such as http://127.0.0.1:8069", context=CONFIG_CONTEXT
        )
    url = url.strip().rstrip("/")
    match = re.fullmatch(r"(https?)://([^/?#\s@]+)(/[^?#\s]*)?", url)
    if match is None:
        raise ValidationError(
            "base_url",
            "must be an http:// or https:// URL without query, fragment or credentials",
            context=CONFIG_CONTEXT,
        )
    return url


def headers(config: ClientConfig) -> dict[str, str]:
    return {
        "authorization": f"Bearer {config.api_key}",
        "connect-protocol-version": "1",
        "user-agent": f"scrawn-python/{VERSION}",
    }


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
        idempotency_key=str(uuid.uuid4())
        if idempotency_key is None
        else check_idempotency_key(idempotency_key),
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
        idempotency_key=str(uuid.uuid4())
        if idempotency_key is None
        else check_idempotency_key(idempotency_key),
    )


def track_events_request(event: PreparedTypedEvent) -> usage_pb.TrackEventsRequest:
    item = usage_pb.TrackedEvent(
        type=event.type,
        userId=event.user_id,
        quantity=event.quantity,
        productRef=event.product_ref or "",
        idempotencyKey=event.idempotency_key,
        eventId=event.event_id or "",
    )
    if event.metadata is not None:
        item.metadata = event.metadata
    return usage_pb.TrackEventsRequest(events=[item])


# Per-item failure codes (StreamEvents' EventFailure.errorCode, TrackEvents' TrackEventResult.errorCode).
KEPT_FOR_REPRICING: Final = "KEPT_FOR_REPRICING"
_ITEM_ERRORS: Final[dict[str, type[ScrawnError]]] = {
    "STORAGE_FAILURE": UnavailableError,
    "INTERNAL_ERROR": InternalError,
}


def item_error(
    code: str,
    message: str,
    *,
    idempotency_key: str | None = None,
    event_id: str | None = None,
    quarantined: bool = False,
) -> ScrawnError:
    """The typed error for one failed item of a batch call, its field parsed from the message. An item the
    server kept for repricing (``KEPT_FOR_REPRICING``, or ``quarantined``) is an
    :class:`~scrawn.errors.EventQuarantinedError`: delivered, not to be retried."""
    from scrawn._connect import field_from_message, request_id_from

    text = message or code
    field_name = field_from_message(text)
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
        )
    if result.status == "failed":
        raise item_error(result.errorCode, result.message)
    return EventResult(
        event_id=result.eventId,
        idempotency_key=result.idempotencyKey or event.idempotency_key,
        duplicate=result.status == "duplicate",
        amount=Decimal(result.amount) if result.amount else None,
    )


# ---------------------------------------------------------------------------------------- tracked events


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
        return json.dumps(
            [
                1,
                self.user_id,
                self.debit.kind,
                self.debit.value,
                self.metadata,
                self.idempotency_key,
                self.reported_at,
                self.usage_type,
            ],
            separators=(",", ":"),
            ensure_ascii=False,
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
        return json.dumps(
            [
                2,
                self.user_id,
                self.event_type,
                self.quantity,
                self.product_ref,
                self.metadata,
                self.idempotency_key,
                self.reported_at,
            ],
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def to_proto(self) -> usage_pb.TrackedEvent:
        item = usage_pb.TrackedEvent(
            type=self.event_type,
            userId=self.user_id,
            quantity=self.quantity,
            productRef=self.product_ref or "",
            idempotencyKey=self.idempotency_key,
            timestamp=self.reported_at,
        )
        if self.metadata is not None:
            item.metadata = self.metadata
        return item


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


def prepare_typed_tracked(
    user_id: object,
    event_type: object,
    quantity: object,
    product_ref: object,
    metadata: object,
    idempotency_key: object,
    timestamp: object,
) -> TypedTrackedEvent:
    """Validate a typed ``track(event_type=...)`` call; errors name the argument."""
    return TypedTrackedEvent(
        check_user_id(user_id),
        check_event_type(event_type, "event_type"),
        check_units(quantity, "quantity"),
        check_product_ref(product_ref),
        None if metadata is None else metadata_text(metadata),
        _track_keys.next() if idempotency_key is None else check_idempotency_key(idempotency_key),
        int(time.time()) if timestamp is None else check_timestamp(timestamp),
    )


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
    """``track()`` called with typed-event arguments: exactly one of ``debit`` and ``event_type``."""
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
    return prepare_typed_tracked(
        user_id,
        event_type,
        1 if quantity is None else quantity,
        product_ref,
        metadata,
        idempotency_key,
        timestamp,
    )


def stream_item(event: TrackedEvent) -> ev.StreamEventRequest:
    return ev.StreamEventRequest(
        type=ev.BASIC_USAGE,
        userId=event.user_id,
        reportedTimestamp=event.reported_at,
        basicUsage=basic_usage(event.debit, event.metadata, event.usage_type),
        idempotencyKey=event.idempotency_key,
    )


# ------------------------------------------------------------------------------------------ unary calls

R = TypeVar("R")


@dataclass(frozen=True)
class Rpc(Generic[R]):
    """One validated unary call, ready to send (and re-send identically on every retry): the request
    message, the response type and how to turn the response into the caller's result. Built by the
    sans-I/O modules (:mod:`scrawn._wallet`, :mod:`scrawn._usage`), sent by either client."""

    operation: str
    path: str
    request: Any
    response_type: Any
    unpack: Callable[[Any], R]
    idempotency_key: str = ""
    user_id: str | None = None


# ------------------------------------------------------------------------------------------- retries


def is_retryable(error: ScrawnError) -> bool:
    """UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and connection failures (which are
    :class:`~scrawn.errors.UnavailableError` / :class:`~scrawn.errors.DeadlineExceededError`) only."""
    return error.code in RETRYABLE_CODES


def backoff(attempt: int, base: float, cap: float, error: ScrawnError | None = None) -> float:
    """Capped exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)] — but never
    less than the wait the server asked for in ``error``'s ``Retry-After`` (see :func:`server_wait`)."""
    jittered = random.uniform(0, min(cap, base * (2 ** min(attempt, 32))))
    return jittered if error is None else max(jittered, server_wait(error))


def server_wait(error: ScrawnError) -> float:
    """The ``Retry-After`` of a RESOURCE_EXHAUSTED or UNAVAILABLE answer, at most ``RETRY_AFTER_MAX``
    seconds (a longer request is honoured that far: a retry sooner than asked may fail again, but a blocked
    caller waiting an hour would be worse); 0 when the server did not say."""
    after = error.retry_after
    if after is None or error.code not in RETRY_AFTER_CODES or not after > 0:
        return 0.0
    return min(after, RETRY_AFTER_MAX)


def retry_delay(config: ClientConfig, error: ScrawnError, retries_done: int) -> float | None:
    """Seconds to wait before the next automatic attempt, or ``None`` to stop retrying."""
    if retries_done >= config.max_retries or not is_retryable(error):
        return None
    return backoff(retries_done, config.backoff_base, config.backoff_max, error)


class ErrorContext:
    """Passed to ``on_error(error, context)``. ``context.retry()`` asks for one more attempt of the same
    call with the same idempotency key (as in the TS SDK); it returns ``False`` once ``max_retries`` manual
    retries have been used. Call it inside the hook."""

    __slots__ = ("_max", "_requested", "attempts", "idempotency_key", "operation", "retry_count", "user_id")

    def __init__(self, operation: str, idempotency_key: str, user_id: str | None, max_retries: int) -> None:
        self.operation = operation
        self.idempotency_key = idempotency_key
        self.user_id = user_id
        self.attempts = 0  # attempts made so far (automatic retries included)
        self.retry_count = 0  # manual retries granted so far
        self._max = max_retries
        self._requested = False

    def retry(self) -> bool:
        if self._requested:
            return True
        if self.retry_count >= self._max:
            return False
        self._requested = True
        return True

    def _take_request(self) -> bool:
        requested, self._requested = self._requested, False
        if requested:
            self.retry_count += 1
        return requested

    def __repr__(self) -> str:
        return (
            f"ErrorContext(operation={self.operation!r}, idempotency_key={self.idempotency_key!r}, "
            f"attempts={self.attempts}, retry_count={self.retry_count})"
        )


def run_sync_hook(hook: ErrorHook, error: ScrawnError, ctx: ErrorContext) -> None:
    """Call ``on_error`` from blocking code; an ``async def`` hook is run to completion."""
    result = hook(error, ctx)
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(awaitable: Any) -> None:
    await awaitable
