"""The sans-I/O half of the usage calls of ``usage.v1.UsageService`` — the model price book (``ListModels``,
``CalculateCost``), usage records (``RecordUsage``) and queries (``GetUsage``, ``GetUsageSummary``,
``GetUsageSeries``): validation naming the argument before any network call, request messages, and the
result types.

Costs are minor units (cents) and prices USD, both as ``Decimal``. Token counts follow the providers'
usage objects: ``input_tokens`` counts every input token, cached ones included; ``cached_tokens`` (cache
reads) and ``cache_write_tokens`` are parts of it (docs/usage.md). Times go in as an aware ``datetime`` or
Unix milliseconds and come back as aware ``datetime`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar

from scrawn._core import check_user_id, key_or_new
from scrawn._proto.usage.v1 import usage_pb2 as pb
from scrawn._retry import Rpc
from scrawn._usage_results import (
    CostBreakdown,
    ModelList,
    UsagePage,
    UsageRecord,
    UsageSeries,
    UsageSummary,
    bucket_of,
    cost_of,
    model_of,
    record_of,
    summary_of,
)
from scrawn._wallet import check_description, check_int, check_limit, check_page_token, check_uuid
from scrawn._wallet_results import to_ms
from scrawn.errors import ValidationError
from scrawn.pricing import format_number, parse_number

SERVICE: Final = "/usage.v1.UsageService/"
CONTEXT: Final = "Usage validation failed"
CONTEXTS: Final = ("customer", "system")
USAGE_TYPES: Final = ("text", "audio_stt", "audio_tts", "embedding")
AUDIO_TYPES: Final = ("audio_stt", "audio_tts")
BUCKETS: Final = ("hour", "day", "month")
MAX_TOKENS: Final = 10**12
MAX_AUDIO_SECONDS: Final = Decimal(10_000_000)
MAX_MODEL, MAX_PROVIDER, MAX_TIME_ZONE = 255, 64, 128
MAX_MODELS_PAGE: Final = 1000
MAX_TIME_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

R = TypeVar("R")
UsageContext = Literal["customer", "system"]
UsageType = Literal["text", "audio_stt", "audio_tts", "embedding"]


def fail(field: str, problem: str) -> ValidationError:
    return ValidationError(field, problem, context=CONTEXT)


# ------------------------------------------------------------------------------------------- inputs


def check_model(value: object, field: str = "model") -> str:
    if not isinstance(value, str):
        raise fail(field, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise fail(field, "must be a non-empty string")
    if len(value) > MAX_MODEL or any(ord(c) < 32 for c in value):
        raise fail(field, f"must be at most {MAX_MODEL} characters, without control characters")
    return value


def check_provider(value: object, field: str = "provider") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise fail(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_PROVIDER or any(ord(c) <= 32 for c in value):
        raise fail(field, f"must be at most {MAX_PROVIDER} characters, without spaces or control characters")
    return value


def check_usage_type(value: object, field: str = "usage_type") -> str:
    if not isinstance(value, str) or value not in USAGE_TYPES:
        raise fail(field, f"must be one of {', '.join(USAGE_TYPES)}")
    return value


def check_tokens(field: str, value: object) -> int:
    return check_int(field, value, 0, MAX_TOKENS, CONTEXT)


def check_audio_seconds(value: object) -> str:
    if value is None:
        return ""
    try:
        seconds = parse_number("audio_seconds", value)
    except ValidationError as e:
        raise fail("audio_seconds", e.problem) from None
    if seconds > MAX_AUDIO_SECONDS:
        raise fail("audio_seconds", f"must be at most {MAX_AUDIO_SECONDS}")
    if seconds != seconds.quantize(Decimal("0.001")):
        raise fail("audio_seconds", "must have at most 3 decimal places (milliseconds)")
    return "" if seconds.is_zero() else format_number(seconds)


def check_time(field: str, value: object) -> int:
    """An aware ``datetime`` or Unix milliseconds (an ``int``) as Unix milliseconds; ``None`` → 0."""
    if value is None:
        return 0
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise fail(field, "must be timezone-aware (e.g. datetime.now(timezone.utc))")
        ms = to_ms(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        raise fail(
            field, f"must be a timezone-aware datetime or Unix milliseconds, not {type(value).__name__}"
        )
    if not 0 < ms <= MAX_TIME_MS:
        raise fail(field, "must be after 1970-01-01 and at most 9999-12-31 (Unix milliseconds)")
    return ms


def check_transaction_id(value: object, field: str = "transaction_id") -> str:
    return check_uuid(value, field, "a transaction id", fail)


def check_usage(
    *,
    model: object,
    provider: object,
    usage_type: object,
    input_tokens: object,
    output_tokens: object,
    cached_tokens: object,
    cache_write_tokens: object,
    audio_seconds: object,
) -> dict[str, Any]:
    """The usage fields of a ``RecordUsage`` or ``CalculateCost`` request (wire names), checked."""
    checked_model = check_model(model)
    checked_provider = check_provider(provider)
    kind = check_usage_type(usage_type)
    inputs = check_tokens("input_tokens", input_tokens)
    outputs = check_tokens("output_tokens", output_tokens)
    cached = check_tokens("cached_tokens", cached_tokens)
    cache_write = check_tokens("cache_write_tokens", cache_write_tokens)
    audio = check_audio_seconds(audio_seconds)
    if cached + cache_write > inputs:
        raise fail(
            "cached_tokens" if cached else "cache_write_tokens",
            "must not exceed input_tokens (input_tokens counts cached and cache-write tokens)",
        )
    if audio and kind not in AUDIO_TYPES:
        raise fail("audio_seconds", "is only for the usage types audio_stt and audio_tts")
    if kind == "embedding" and outputs:
        raise fail("output_tokens", "must be 0 for embedding usage")
    if not audio and not (inputs or outputs or cached or cache_write):
        raise fail("input_tokens", "the usage is empty: give token counts or audio_seconds")
    return {
        "model": checked_model,
        "provider": checked_provider,
        "usageType": kind,
        "inputTokens": inputs,
        "outputTokens": outputs,
        "cachedTokens": cached,
        "cacheWriteTokens": cache_write,
        "audioSeconds": audio,
    }


def check_filter(
    user_id: object = None,
    context: object = None,
    model: object = None,
    usage_type: object = None,
    transaction_id: object = None,
    start_time: object = None,
    end_time: object = None,
    *,
    require_range: bool = False,
) -> pb.UsageFilter:
    f = pb.UsageFilter()
    if user_id is not None:
        f.userId = check_user_id(user_id, "user_id", CONTEXT)
    if context is not None:
        if context not in CONTEXTS or not isinstance(context, str):
            raise fail("context", "must be customer or system")
        f.context = context
    if model is not None:
        f.model = check_model(model)
    if usage_type is not None:
        f.usageType = check_usage_type(usage_type)
    if transaction_id is not None:
        f.transactionId = check_transaction_id(transaction_id)
    f.startTime = check_time("start_time", start_time)
    f.endTime = check_time("end_time", end_time)
    if require_range and not f.startTime:
        raise fail("start_time", "is required")
    if require_range and not f.endTime:
        raise fail("end_time", "is required")
    if f.startTime and f.endTime and f.endTime <= f.startTime:
        raise fail("end_time", "must be after start_time")
    return f


# --------------------------------------------------------------------------------------------- calls


def _call(
    operation: str,
    request: Any,
    response_type: Any,
    unpack: Callable[[Any], R],
    key: str = "",
    user: str | None = None,
) -> Rpc[R]:
    """A call of ``UsageService``: its method is the operation's name in PascalCase (``get_usage`` →
    ``GetUsage``)."""
    method = operation.title().replace("_", "")
    return Rpc(operation, SERVICE + method, request, response_type, unpack, key, user)


def list_models(
    provider: object, search: object, at: object, limit: object, page_token: object
) -> Rpc[ModelList]:
    if search is not None and (not isinstance(search, str) or len(search) > MAX_MODEL or "\x00" in search):
        raise fail("search", f"must be a string of at most {MAX_MODEL} characters")
    request = pb.ListModelsRequest(
        provider=check_provider(provider),
        search=search or "",
        at=check_time("at", at),
        limit=check_limit(limit, MAX_MODELS_PAGE, CONTEXT),
        pageToken=check_page_token(page_token, CONTEXT),
    )

    def unpack(response: Any) -> ModelList:
        return ModelList(
            [model_of(m) for m in response.models], response.nextPageToken or None, response.priceBook
        )

    return _call("list_models", request, pb.ListModelsResponse, unpack)


def calculate_cost(usage: dict[str, Any], timestamp: object) -> Rpc[CostBreakdown]:
    request = pb.CalculateCostRequest(
        **usage,
        timestamp=check_time("timestamp", timestamp),
    )
    return _call("calculate_cost", request, pb.CalculateCostResponse, lambda response: cost_of(response.cost))


def record_usage(
    *,
    context: object,
    user_id: object,
    transaction_id: object,
    usage: dict[str, Any],
    description: object,
    idempotency_key: object,
    timestamp: object,
) -> Rpc[UsageRecord]:
    if context is None:
        if transaction_id is None:
            raise fail(
                "context",
                'is required: "system" for your own usage, or give transaction_id for customer usage',
            )
        context = "customer"
    if context not in CONTEXTS or not isinstance(context, str):
        raise fail("context", "must be customer or system")
    if context == "customer":
        user = check_user_id(user_id, "user_id", CONTEXT)
        if transaction_id is None:
            raise fail("transaction_id", "is required for customer usage (the confirmation's transaction_id)")
        transaction = check_transaction_id(transaction_id)
    else:
        user = "" if user_id is None else check_user_id(user_id, "user_id", CONTEXT)
        if transaction_id is not None:
            raise fail("transaction_id", "is only for customer usage; system usage stands alone")
        transaction = ""
    key = key_or_new(idempotency_key, CONTEXT)
    request = pb.RecordUsageRequest(
        userId=user,
        context=context,
        transactionId=transaction,
        **usage,
        description=check_description(description, context=CONTEXT),
        idempotencyKey=key,
        timestamp=check_time("timestamp", timestamp),
    )
    return _call(
        "record_usage",
        request,
        pb.RecordUsageResponse,
        lambda response: record_of(response.record, response.duplicate),
        key,
        user or None,
    )


def get_usage(filter_: pb.UsageFilter, summary: object, limit: object, page_token: object) -> Rpc[UsagePage]:
    if not isinstance(summary, bool):
        raise fail("summary", "must be a bool")
    request = pb.GetUsageRequest(
        filter=filter_,
        summary=summary,
        limit=check_limit(limit, context=CONTEXT),
        pageToken=check_page_token(page_token, CONTEXT),
    )

    def unpack(response: Any) -> UsagePage:
        return UsagePage(
            [record_of(r) for r in response.records],
            response.nextPageToken or None,
            summary_of(response.summary) if summary else None,
        )

    return _call("get_usage", request, pb.GetUsageResponse, unpack)


def get_usage_summary(filter_: pb.UsageFilter) -> Rpc[UsageSummary]:
    return _call("get_usage_summary", pb.GetUsageSummaryRequest(filter=filter_), pb.UsageSummary, summary_of)


def get_usage_series(filter_: pb.UsageFilter, bucket: object, time_zone: object) -> Rpc[UsageSeries]:
    if not isinstance(bucket, str) or bucket not in BUCKETS:
        raise fail("bucket", "must be hour, day or month")
    if not isinstance(time_zone, str) or not time_zone or len(time_zone) > MAX_TIME_ZONE:
        raise fail("time_zone", "must be an IANA time zone name such as Europe/Berlin")
    if time_zone.startswith("/") or ".." in time_zone or "\x00" in time_zone or "\\" in time_zone:
        raise fail("time_zone", "must be an IANA time zone name such as Europe/Berlin, not a path")
    request = pb.GetUsageSeriesRequest(filter=filter_, bucket=bucket, timeZone=time_zone)

    def unpack(response: Any) -> UsageSeries:
        return UsageSeries([bucket_of(b) for b in response.buckets], response.bucket, response.timeZone)

    return _call("get_usage_series", request, pb.GetUsageSeriesResponse, unpack)
