"""Every call of the clients, written once: a function per call that validates its arguments and builds
the request — an :class:`~scrawn._core.Rpc` (or an :class:`EventCall` for the event calls, whose failures
go through ``on_error``) — and how to read the answer. :class:`scrawn.Scrawn` and
:class:`scrawn.AsyncScrawn` only send it (``name = call(_calls.name)`` in
:class:`~scrawn._client_base.ClientBase` makes each function a method of both clients), so adding an RPC
means writing one function here and one line there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from scrawn import _config, _core, _payments, _usage, _void
from scrawn._core import EventResult
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn._retry import ErrorHook, Rpc
from scrawn._usage import UsageContext
from scrawn._usage import UsageType as LlmUsageType
from scrawn._usage_results import CostBreakdown, ModelList, UsagePage, UsageRecord, UsageSeries, UsageSummary
from scrawn._void import VoidedEvent
from scrawn.errors import ScrawnError

if TYPE_CHECKING:
    from scrawn.types import DebitInput, JSONObject, Number, Timestamp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventCall(Generic[T]):
    """An event call: ``rpc`` is retried by the automatic retries; ``finish`` reads its answer; a failure
    goes to ``on_error`` (the call's, else the client's), which may ask for another attempt, and one it
    handles becomes the :class:`~scrawn.EventResult` of ``handled`` instead of being raised."""

    rpc: Rpc[T]
    finish: Callable[[T], EventResult]
    handled: Callable[[ScrawnError], EventResult]
    on_error: ErrorHook | None


def _same(response: T) -> T:
    return response


# ------------------------------------------------------------------------------------------ events


def basic_usage_event_consumer(
    *,
    user_id: str,
    debit: DebitInput,
    metadata: JSONObject | str | None = None,
    event_id: str | None = None,
    idempotency_key: str | None = None,
    on_error: ErrorHook | None = None,
) -> EventCall[ev.RegisterEventResponse]:
    """Record one billable use for ``user_id`` and wait until it is stored.

    ``debit`` is an amount in minor units (``int``, ``Decimal``, decimal ``str``, ``float``), a
    ``tag("NAME")`` or a pricing expression (``mul(tag("PER_PAGE"), 3)``). ``metadata`` is a dict
    stored as JSON (≤ 16 KiB). ``idempotency_key`` defaults to a new UUID, reused by every retry."""
    on_error = _config.check_hook(on_error)
    event = _core.prepare_basic_event(user_id, debit, metadata, event_id, idempotency_key)
    rpc = Rpc(
        "basic_usage_event_consumer",
        _core.REGISTER_EVENT,
        _core.register_request(event),
        ev.RegisterEventResponse,
        _same,
        event.idempotency_key,
        event.user_id,
    )
    return EventCall(
        rpc,
        lambda response: _core.event_result(response, event),
        lambda error: _core.failed_result(event, error),
        on_error,
    )


def create_event(
    *,
    type: str,
    customer_ref: str,
    units: Number = 1,
    product_ref: str | None = None,
    metadata: JSONObject | str | None = None,
    event_id: str | None = None,
    idempotency_key: str | None = None,
    on_error: ErrorHook | None = None,
) -> EventCall[EventResult]:
    """Record a typed event — ``create_event(type="document.processed", customer_ref="cust_7",
    units=3)`` — priced by the project's event price for ``type`` (free when it has none), through
    ``usage.v1.UsageService/TrackEvents``. The result's ``event_id`` names the stored event and
    ``amount`` what it was charged."""
    on_error = _config.check_hook(on_error)
    event = _core.prepare_typed_event(
        type, customer_ref, units, product_ref, metadata, event_id, idempotency_key
    )
    rpc = Rpc(
        "create_event",
        _core.TRACK_EVENTS,
        _core.track_events_request(event),
        usage_pb.TrackEventsResponse,
        lambda response: _core.typed_result(response, event),
        event.idempotency_key,
        event.user_id,
    )
    return EventCall(rpc, _same, lambda error: _core.failed_result(event, error), on_error)


# ------------------------------------------------------------------------------ usage, payments, voids


def record_usage(
    *,
    model: str,
    context: UsageContext | None = None,
    user_id: str | None = None,
    transaction_id: str | None = None,
    provider: str | None = None,
    usage_type: LlmUsageType = "text",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    audio_seconds: Number | None = None,
    description: str | None = None,
    idempotency_key: str | None = None,
    timestamp: Timestamp | None = None,
) -> Rpc[UsageRecord]:
    """Price and store one LLM usage record (``usage.v1.UsageService/RecordUsage``), once per
    idempotency key. ``context="customer"`` (implied by ``transaction_id``) ties it to a confirmed
    reservation's ``transaction_id`` and needs ``user_id``; ``context="system"`` is your own usage.
    ``input_tokens`` counts every input token, cached ones included (docs/usage.md)."""
    usage = _usage.check_usage(
        model=model,
        provider=provider,
        usage_type=usage_type,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        audio_seconds=audio_seconds,
    )
    return _usage.record_usage(
        context=context,
        user_id=user_id,
        transaction_id=transaction_id,
        usage=usage,
        description=description,
        idempotency_key=idempotency_key,
        timestamp=timestamp,
    )


def get_usage(
    *,
    user_id: str | None = None,
    context: UsageContext | None = None,
    model: str | None = None,
    usage_type: LlmUsageType | None = None,
    transaction_id: str | None = None,
    start_time: Timestamp | None = None,
    end_time: Timestamp | None = None,
    summary: bool = False,
    limit: int | None = None,
    page_token: str | None = None,
) -> Rpc[UsagePage]:
    """Usage records matching the filter, newest first and paged (``limit`` 1–500, default 50), or
    with ``summary=True`` their :class:`~scrawn.UsageSummary` in ``.summary``. Times: an aware
    ``datetime`` or Unix milliseconds; ``[start_time, end_time)``."""
    filter_ = _usage.check_filter(user_id, context, model, usage_type, transaction_id, start_time, end_time)
    return _usage.get_usage(filter_, summary, limit, page_token)


def get_usage_summary(
    *,
    user_id: str | None = None,
    context: UsageContext | None = None,
    model: str | None = None,
    usage_type: LlmUsageType | None = None,
    transaction_id: str | None = None,
    start_time: Timestamp | None = None,
    end_time: Timestamp | None = None,
) -> Rpc[UsageSummary]:
    """Total cost, records, tokens and audio seconds of the matching records, by model and by context."""
    filter_ = _usage.check_filter(user_id, context, model, usage_type, transaction_id, start_time, end_time)
    return _usage.get_usage_summary(filter_)


def get_usage_series(
    *,
    bucket: Literal["hour", "day", "month"],
    start_time: Timestamp,
    end_time: Timestamp,
    time_zone: str = "UTC",
    user_id: str | None = None,
    context: UsageContext | None = None,
    model: str | None = None,
    usage_type: LlmUsageType | None = None,
    transaction_id: str | None = None,
) -> Rpc[UsageSeries]:
    """The same totals per hour, day or month of the IANA ``time_zone``, every bucket of the range."""
    filter_ = _usage.check_filter(
        user_id, context, model, usage_type, transaction_id, start_time, end_time, require_range=True
    )
    return _usage.get_usage_series(filter_, bucket, time_zone)


def collect_payment(user_id: str, *, top_up: Number | None = None, return_url: str | None = None) -> Rpc[str]:
    """A checkout link (``{base}/checkout/{id}``) charging what ``user_id`` owes, rounded up to a whole
    minor unit, or a ``top_up`` of their prepaid wallet (int, Decimal or str, in the project's amount
    unit). The same link comes back while that checkout is open; a changed amount replaces it. Raises
    FailedPreconditionError when there is nothing to pay or no payment provider is configured."""
    return _payments.collect_payment(user_id, top_up, return_url)


def portal_link(
    user_id: str, *, return_url: str | None = None, expires_in: int = 3600
) -> Rpc[_payments.PortalLink]:
    """A signed, read-only link (``{SCRAWN_PUBLIC_URL}/portal/{token}``) where ``user_id`` sees their
    balance, usage by day and by model, recent charges, and can pay or top up (docs/portal.md). It expires
    after ``expires_in`` seconds (60 to 604800, 7 days), or when the key that made it is revoked."""
    return _payments.portal_link(user_id, return_url, expires_in)


def void_event(
    *, event_id: str | None = None, idempotency_key: str | None = None, reason: str
) -> Rpc[VoidedEvent]:
    """Void a billed event (by ``event_id`` or ``idempotency_key``, exactly one) with a ``reason``: one
    reversing ledger entry credits its debit back, exactly once; the event stays, marked voided, and its
    idempotency key stays taken. Voiding it again answers ``already_voided=True`` with the first void.
    Raises NotFoundError when the key's project and mode hold no such event."""
    return _void.void_event(event_id, idempotency_key, reason)


def list_models(
    *,
    provider: str | None = None,
    search: str | None = None,
    at: Timestamp | None = None,
    limit: int | None = None,
    page_token: str | None = None,
) -> Rpc[ModelList]:
    """The price list in force ``at`` (default now): the project's overrides, then the model price book,
    in USD per million tokens; ``limit`` 1–1000 (default 100)."""
    return _usage.list_models(provider, search, at, limit, page_token)


def calculate_cost(
    *,
    model: str,
    provider: str | None = None,
    usage_type: LlmUsageType = "text",
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    audio_seconds: Number | None = None,
    timestamp: Timestamp | None = None,
) -> Rpc[CostBreakdown]:
    """What this usage costs, in cents, with the prices in force at ``timestamp`` (default now)."""
    usage = _usage.check_usage(
        model=model,
        provider=provider,
        usage_type=usage_type,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        audio_seconds=audio_seconds,
    )
    return _usage.calculate_cost(usage, timestamp)
