"""``ai_token_stream_consumer``: bill an iterable (or async iterable) of token-usage chunks over
``event.v1.EventService/StreamEvents``, optionally handing every chunk back to the caller (``fork=True``).

Each billable chunk becomes one ``AI_TOKEN_USAGE`` event, as in the TS SDK. Chunks are sent in batches
(``batch_size`` items, or whatever arrived within ``flush_interval`` seconds of the first unsent one), each
batch one StreamEvents call retried by the client's rules with the same idempotency keys.

``fork=False`` consumes the source in the caller and returns an :class:`AiStreamResult` when it is done.
``fork=True`` returns a :class:`ForkedAiStream` (or :class:`AsyncForkedAiStream`) that yields every chunk
as soon as the source produces it, while a background worker (a thread, or an asyncio task) bills it.
The fork buffer is bounded: the billing side holds at most ``buffer_size`` chunks waiting (plus the batch
being sent); when it is full — only when the billing server is slower than the source for that long —
the caller's iteration waits for it. Nothing is dropped and memory stays bounded; each batch's wait is
bounded by the client's retry budget, after which the batch is reported as failed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeAlias, TypeVar

from scrawn._ai_events import (
    DEBIT_FIELDS,
    TOKEN_FIELDS,
    AiEvent,
    AiUsage,
    ErrorHook,
    call_hook_async,
    call_hook_sync,
    check_debit,
    check_metadata,
    check_model,
    check_provider,
    hook_for,
    outcomes_of,
    prepare_event,
    send_events_async,
    send_events_sync,
)
from scrawn._client_base import AnyClient, AsyncClient, SyncClient
from scrawn._codes import KEPT_FOR_REPRICING
from scrawn._core import check_user_id, is_quarantined
from scrawn._methods import Steps, run, run_async
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._retry import ErrorContext
from scrawn.errors import ScrawnError, ValidationError
from scrawn.pricing import Debit

log = logging.getLogger("scrawn.ai")

T = TypeVar("T")
Chunks: TypeAlias = Iterable[T] | AsyncIterable[T]
"""What a stream consumer reads: chunks of type ``T``, plain or asynchronous."""
_END: Final = object()
OPERATION: Final = "ai_token_stream_consumer"

_ALIASES: Final = {
    "userId": "user_id",
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "inputCacheTokens": "input_cache_tokens",
    "outputCacheTokens": "output_cache_tokens",
    "inputDebit": "input_debit",
    "outputDebit": "output_debit",
    "inputCacheDebit": "input_cache_debit",
    "outputCacheDebit": "output_cache_debit",
    "idempotencyKey": "idempotency_key",
}
CHUNK_KEYS: Final = frozenset(
    {"user_id", "model", "provider", "metadata", "idempotency_key", *TOKEN_FIELDS, *DEBIT_FIELDS}
)


class ExtractorError(ScrawnError):
    """A user callback (a middleware ``extractor``, a stream's ``extract``) raised; the original exception
    is ``__cause__``. Reported to ``on_error`` (or logged), never raised into the request or stream."""

    code = "invalid_argument"


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class AiFailure:
    """A chunk that was not billed. ``index`` is its position in the source; ``code`` is the server's
    per-item code (``PRICE_CALCULATION_FAILED``, …), ``VALIDATION_FAILED`` for a chunk refused locally,
    or the RPC code (``UNAVAILABLE``, …) when its whole batch could not be delivered."""

    index: int
    idempotency_key: str
    code: str
    message: str
    error: ScrawnError


@dataclass
class AiStreamResult:
    """What billing a stream came to: ``events_processed`` items answered by the server, of which
    ``events_succeeded`` were stored (``duplicates`` of them already stored before); ``quarantined``:
    chunks the server kept for repricing (delivered, billed once the configuration is fixed: not failures);
    and ``failures``: every chunk that was not billed, with the reason."""

    events_processed: int = 0
    events_succeeded: int = 0
    duplicates: int = 0
    failures: list[AiFailure] = field(default_factory=list)
    quarantined: list[AiFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def events_failed(self) -> int:
        return len(self.failures)


_ITEM_CODE = re.compile(r"([A-Z][A-Z_]+): ")


def _code_of(error: ScrawnError) -> str:
    """A batch item's server code (``item_error`` messages start with it), else the RPC code."""
    found = _ITEM_CODE.match(error.message)
    return found.group(1) if found else error.code.upper()


def _record_failure(result: AiStreamResult, event: AiEvent, error: ScrawnError) -> None:
    result.failures.append(
        AiFailure(event.index, event.idempotency_key, _code_of(error), error.message, error)
    )


def _record_local(result: AiStreamResult, index: int, error: ScrawnError) -> None:
    code = "VALIDATION_FAILED" if isinstance(error, ValidationError) else error.code.upper()
    result.failures.append(AiFailure(index, "", code, error.message, error))


def _settle(
    result: AiStreamResult, batch: list[AiEvent], response: ev.StreamEventResponse
) -> tuple[list[tuple[AiEvent, ScrawnError]], list[tuple[AiEvent, ScrawnError]]]:
    """Count a batch's response; returns the failed items and the items kept for repricing (recorded in
    ``result.quarantined``: delivered, never sent again), each with its error."""
    result.events_processed += len(batch)
    result.duplicates += response.duplicates
    failed: list[tuple[AiEvent, ScrawnError]] = []
    kept: list[tuple[AiEvent, ScrawnError]] = []
    for event, outcome in zip(batch, outcomes_of(response, len(batch)), strict=True):
        if outcome.error is None:
            result.events_succeeded += 1
        elif is_quarantined(outcome.error):
            result.quarantined.append(
                AiFailure(
                    event.index,
                    event.idempotency_key,
                    KEPT_FOR_REPRICING,
                    outcome.error.message,
                    outcome.error,
                )
            )
            kept.append((event, outcome.error))
        else:
            failed.append((event, outcome.error))
    return failed, kept


def _log_kept(kept: list[tuple[AiEvent, ScrawnError]]) -> None:
    event, error = kept[0]
    log.warning(
        "scrawn: %d AI token events were kept for repricing by the server (delivered, not billed until "
        "`scrawn events reprice`); first (idempotency key %s): %s",
        len(kept),
        event.idempotency_key,
        error.message,
    )


def _context(event: AiEvent, max_retries: int) -> ErrorContext:
    return ErrorContext(OPERATION, event.idempotency_key, event.user_id, max_retries)


# ------------------------------------------------------------------------------------------ chunks


@dataclass(frozen=True)
class StreamDefaults:
    user_id: str | None
    model: str | None
    provider: str | None
    debits: dict[str, Debit | None]
    metadata: str | None
    extract: Callable[[Any], Any] | None


def check_defaults(
    *,
    user_id: object,
    model: object,
    provider: object,
    debits: Mapping[str, object],
    metadata: object,
    extract: object,
) -> StreamDefaults:
    if extract is not None and not callable(extract):
        raise ValidationError("extract", "must be callable as extract(chunk)", context="Invalid option")
    return StreamDefaults(
        user_id=None if user_id is None else check_user_id(user_id),
        model=None if model is None else check_model("model", model),
        provider=check_provider("provider", provider),
        debits={key: check_debit(key, debits.get(key)) for key in DEBIT_FIELDS},
        metadata=check_metadata("metadata", metadata),
        extract=extract,
    )


def prepare_chunk(chunk: object, index: int, defaults: StreamDefaults) -> AiEvent | None:
    """One chunk → one validated event (``None``: nothing to bill). Raises :class:`ValidationError`
    naming ``chunks[i].<field>``, or :class:`ExtractorError` when ``extract`` raised."""
    if defaults.extract is not None:
        try:
            chunk = defaults.extract(chunk)
        except Exception as e:
            raise ExtractorError(
                f"extract raised {type(e).__name__} on chunks[{index}]: {e}", field="extract"
            ) from e
        if chunk is None:
            return None
    prefix = f"chunks[{index}]."
    fields: dict[str, object]
    if isinstance(chunk, AiUsage):
        fields = {key: getattr(chunk, key) for key in TOKEN_FIELDS}
        if chunk.model is not None:
            fields["model"] = chunk.model
    elif isinstance(chunk, Mapping):
        fields = {}
        for key, value in chunk.items():
            name = _ALIASES.get(key, key) if isinstance(key, str) else key
            if name not in CHUNK_KEYS:
                raise ValidationError(
                    f"chunks[{index}]",
                    f"has an unknown key {str(key)[:40]!r} "
                    f"(expected some of {', '.join(sorted(CHUNK_KEYS))})",
                    context="Event validation failed",
                )
            fields[str(name)] = value
    else:
        raise ValidationError(
            f"chunks[{index}]",
            f"must be a mapping of token counts or a scrawn.ai.AiUsage, not {type(chunk).__name__}"
            + (" (pass extract= to read provider chunks)" if defaults.extract is None else ""),
            context="Event validation failed",
        )
    user_id = fields.get("user_id", defaults.user_id)
    if user_id is None:
        raise ValidationError(
            f"{prefix}user_id",
            "is required: pass user_id= or include it in every chunk",
            context="Event validation failed",
        )
    model = fields.get("model") or defaults.model
    if model is None:
        raise ValidationError(
            f"{prefix}model",
            "is required: pass model= or include it in every chunk",
            context="Event validation failed",
        )
    debits = {
        key: check_debit(f"{prefix}{key}", fields[key]) if key in fields else defaults.debits[key]
        for key in DEBIT_FIELDS
    }
    metadata = (
        check_metadata(f"{prefix}metadata", fields["metadata"]) if "metadata" in fields else defaults.metadata
    )
    return prepare_event(
        prefix=prefix,
        user_id=user_id,
        model=model,
        provider=fields.get("provider", defaults.provider),
        tokens={key: fields[key] for key in TOKEN_FIELDS if key in fields},
        debits=debits,
        metadata=metadata,
        idempotency_key=fields.get("idempotency_key"),
        index=index,
    )


# ---------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Delivery:
    """How a flavour delivers AI events, as steps (:mod:`scrawn._methods`): ``send`` a batch and
    ``call_hook`` (``on_error``) run in the calling thread, or are awaited."""

    send: Callable[[list[AiEvent]], object]
    call_hook: Callable[[ErrorHook, ScrawnError, ErrorContext], object]
    hook: ErrorHook | None
    max_retries: int


def sync_delivery(client: SyncClient, hook: ErrorHook | None) -> Delivery:
    return Delivery(partial(send_events_sync, client), call_hook_sync, hook, client._config.max_retries)


def async_delivery(client: AnyClient, hook: ErrorHook | None) -> Delivery:
    def send(batch: list[AiEvent]) -> Awaitable[ev.StreamEventResponse]:
        if isinstance(client, AsyncClient):
            return send_events_async(client, batch)
        return asyncio.to_thread(send_events_sync, client, batch)  # a blocking client's call, in a thread

    return Delivery(send, call_hook_async, hook, client._config.max_retries)


def deliver_steps(
    delivery: Delivery, batch: list[AiEvent], result: AiStreamResult, raise_errors: bool
) -> Steps[None]:
    """Send one batch; count it in ``result``. A failure of the whole call is raised (``raise_errors``
    without a hook) or reported to ``on_error`` — whose ``context.retry()`` sends the batch again — and
    recorded. Failed items are reported one by one; ``context.retry()`` re-sends those items."""
    hook, max_retries = delivery.hook, delivery.max_retries
    ctx = _context(batch[0], max_retries)
    while batch:
        try:
            response = yield partial(delivery.send, batch)
        except ScrawnError as error:
            if hook is None:
                if raise_errors:
                    raise
                log.warning("scrawn: billing %d AI token events failed: %s", len(batch), error.message)
            else:
                yield partial(delivery.call_hook, hook, error, ctx)
                if ctx._take_request():
                    continue
            for event in batch:
                _record_failure(result, event, error)
            return
        again: list[AiEvent] = []
        failed, kept = _settle(result, batch, response)
        if kept and hook is None:
            _log_kept(kept)
        elif hook is not None:
            for event, kept_error in kept:  # reported so the app can log it; a retry request is ignored
                yield partial(delivery.call_hook, hook, kept_error, _context(event, max_retries))
        for event, item_error in failed:
            if hook is None:
                log.warning(
                    "scrawn: AI token event %s was not billed: %s", event.idempotency_key, item_error.message
                )
                _record_failure(result, event, item_error)
                continue
            item_ctx = _context(event, max_retries)
            yield partial(delivery.call_hook, hook, item_error, item_ctx)
            if item_ctx._take_request():
                result.events_processed -= 1  # counted again when re-sent
                again.append(event)
            else:
                _record_failure(result, event, item_error)
        batch = again


# ------------------------------------------------------------------------------------ fork=False


@dataclass(frozen=True)
class Limits:
    batch_size: int
    buffer_size: int
    flush_interval: float


def _consume_steps(
    delivery: Delivery, next_chunk: Callable[[], object], defaults: StreamDefaults, limits: Limits
) -> Steps[AiStreamResult]:
    """Read the chunks (each ``next_chunk`` step gives one, or ``_END``) and bill them in batches; when
    the source (or a chunk) fails, what was consumed before it is billed, then the error re-raised."""
    result = AiStreamResult()
    pending: list[AiEvent] = []
    first_at = 0.0

    def flush() -> Steps[None]:
        nonlocal pending
        batch, pending = pending, []
        if batch:
            yield from deliver_steps(delivery, batch, result, True)

    try:
        index = 0
        while (chunk := (yield next_chunk)) is not _END:
            event = prepare_chunk(chunk, index, defaults)
            index += 1
            if event is None:
                continue
            if not pending:
                first_at = time.monotonic()
            pending.append(event)
            if len(pending) >= limits.batch_size or time.monotonic() - first_at >= limits.flush_interval:
                yield from flush()
    except BaseException:
        try:
            yield from flush()
        except Exception:
            log.exception("scrawn: billing the chunks consumed before the stream failed also failed")
        raise
    yield from flush()
    return result


def consume_sync(
    client: SyncClient,
    chunks: Iterable[Any],
    defaults: StreamDefaults,
    limits: Limits,
    on_error: ErrorHook | None,
) -> AiStreamResult:
    delivery = sync_delivery(client, hook_for(client, on_error))
    return run(_consume_steps(delivery, partial(next, iter(chunks), _END), defaults, limits))


async def consume_async(
    client: AnyClient,
    chunks: Iterable[Any] | AsyncIterable[Any],
    defaults: StreamDefaults,
    limits: Limits,
    on_error: ErrorHook | None,
) -> AiStreamResult:
    delivery = async_delivery(client, hook_for(client, on_error))
    return await run_async(_consume_steps(delivery, partial(anext, _aiter(chunks), _END), defaults, limits))


async def _aiter(chunks: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk
