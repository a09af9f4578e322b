"""AI token events: validation (naming the field, before any network call), the wire form
(``event.v1.StreamEventRequest`` with ``aiTokenUsage``), delivery over ``StreamEvents`` with the client's
retry rules, and the per-client background buffer behind :func:`scrawn.ai.track_ai`.

Nothing here imports a provider SDK; :mod:`scrawn._ai_wrappers` does, lazily.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import operator
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, SupportsIndex, cast

from scrawn import _config, _core, _retry
from scrawn._client_base import AnyClient, AsyncClient, ClientBase, SyncClient
from scrawn._connect import Transport
from scrawn._core import check_idempotency_key, check_user_id, metadata_text
from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._retry import ErrorContext
from scrawn._track import Tracker
from scrawn._track_send import ItemOutcome, stream_outcomes
from scrawn.errors import ScrawnError, ValidationError
from scrawn.pricing import TOKEN_PLACEHOLDERS, Debit, Expression, tag, to_debit

log = logging.getLogger("scrawn.ai")

INT32_MAX: Final = 2**31 - 1
MAX_MODEL: Final = 255
EVENT_CONTEXT: Final = "Event validation failed"
TOKEN_FIELDS: Final = ("input_tokens", "output_tokens", "input_cache_tokens", "output_cache_tokens")
DEBIT_FIELDS: Final = ("input_debit", "output_debit", "input_cache_debit", "output_cache_debit")
_WIRE_DEBIT: Final = {
    "input_debit": "input",
    "output_debit": "output",
    "input_cache_debit": "inputCache",
    "output_cache_debit": "outputCache",
}
_WIRE_TOKENS: Final = {
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "input_cache_tokens": "inputCacheTokens",
    "output_cache_tokens": "outputCacheTokens",
}


ErrorHook = Callable[[ScrawnError, ErrorContext], object]


def debit_map(
    input_debit: object, output_debit: object, input_cache_debit: object, output_cache_debit: object
) -> dict[str, object]:
    """The four debit keyword arguments of the AI calls, by name (what ``check_debits`` reads)."""
    values = (input_debit, output_debit, input_cache_debit, output_cache_debit)
    return dict(zip(DEBIT_FIELDS, values, strict=True))


# ------------------------------------------------------------------------------------------- usage


@dataclass(frozen=True, slots=True)
class AiUsage:
    """Token counts of one LLM call (or one chunk of a stream), in Scrawn's semantics:

    - ``input_tokens``: *uncached* input (prompt) tokens;
    - ``input_cache_tokens``: input tokens read from the provider's prompt cache;
    - ``output_cache_tokens``: input tokens written to the prompt cache;
    - ``output_tokens``: generated tokens (reasoning included).

    ``model`` is the model the provider reported, when known. :func:`scrawn.ai.openai_usage` and
    :func:`scrawn.ai.anthropic_usage` build one from a provider response."""

    input_tokens: int = 0
    output_tokens: int = 0
    input_cache_tokens: int = 0
    output_cache_tokens: int = 0
    model: str | None = None


# -------------------------------------------------------------------------------------- validation


def _name(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def check_client(client: object) -> AnyClient:
    if not isinstance(client, SyncClient | AsyncClient):
        raise ValidationError(
            "client",
            f"must be a scrawn.Scrawn or scrawn.AsyncScrawn, not {type(client).__name__}",
            context=EVENT_CONTEXT,
        )
    return client


def check_tokens(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValidationError(name, "must be an int, not a bool", context=EVENT_CONTEXT)
    try:
        number = operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise ValidationError(
            name, f"must be an int, not {type(value).__name__}", context=EVENT_CONTEXT
        ) from None
    if number < 0:
        raise ValidationError(name, "must not be negative", context=EVENT_CONTEXT)
    if number > INT32_MAX:
        raise ValidationError(name, f"must be at most {INT32_MAX}", context=EVENT_CONTEXT)
    return int(number)


def check_model(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}", context=EVENT_CONTEXT)
    if not value or value.isspace():
        raise ValidationError(name, "must be a non-empty string", context=EVENT_CONTEXT)
    if len(value) > MAX_MODEL or "\x00" in value:
        raise ValidationError(
            name, f"must be at most {MAX_MODEL} characters, without NUL", context=EVENT_CONTEXT
        )
    return value


def check_provider(name: str, value: object) -> str | None:
    if value is None:
        return None
    return check_model(name, value)


def check_debit(name: str, value: object) -> Debit | None:
    """An AI debit: ``None`` (the server's model price book prices it), a number of minor units, a
    ``tag(...)``, or an expression that may use the token placeholders. A TS-style mapping with exactly
    one of ``amount`` / ``tag`` / ``expr`` is accepted too."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        keys = [k for k in ("amount", "tag", "expr") if k in value]
        extra = sorted(str(k) for k in value if k not in ("amount", "tag", "expr"))
        if extra or len(keys) != 1:
            raise ValidationError(
                name, "as a mapping must hold exactly one of amount, tag or expr", context=EVENT_CONTEXT
            )
        key = keys[0]
        inner = value[key]
        if key == "tag":
            if isinstance(inner, Expression):
                value = inner
            else:
                try:
                    value = tag(inner)
                except ValidationError as e:
                    raise ValidationError(name, e.problem, context=EVENT_CONTEXT) from None
        elif key == "expr" and not isinstance(inner, Expression):
            raise ValidationError(
                name, "expr must be a pricing expression built with scrawn.pricing", context=EVENT_CONTEXT
            )
        else:
            value = inner
    return to_debit(name, value, allowed=TOKEN_PLACEHOLDERS)


def check_debits(prefix: str, debits: Mapping[str, object]) -> dict[str, Debit | None]:
    return {key: check_debit(_name(prefix, key), debits.get(key)) for key in DEBIT_FIELDS}


def check_metadata(name: str, value: object) -> str | None:
    return metadata_text(value, name)


def check_positive_int(name: str, value: object, *, low: int = 1, high: int = 10_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(name, f"must be an int from {low} to {high}", context="Invalid option")
    return value


def check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ValidationError(
            name, "must be a number of seconds, above 0 and at most 3600", context="Invalid option"
        )
    return float(value)


def check_hook(name: str, value: object) -> ErrorHook | None:
    if value is not None and not callable(value):
        raise ValidationError(name, "must be callable as on_error(error, context)", context="Invalid option")
    return value


# ------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class AiEvent:
    """A validated AI token event, keyed and timestamped once so every delivery attempt is identical."""

    user_id: str
    model: str
    provider: str | None
    input_tokens: int
    output_tokens: int
    input_cache_tokens: int
    output_cache_tokens: int
    debits: dict[str, Debit | None]
    metadata: str | None
    idempotency_key: str
    reported_at: int  # Unix seconds; 0 lets the server stamp it (see prepare_event)
    index: int = 0  # where it came from (a stream's chunk index), for reporting

    def to_proto(self) -> ev.StreamEventRequest:
        usage = ev.AITokenUsage(
            model=self.model, **{wire: getattr(self, name) for name, wire in _WIRE_TOKENS.items()}
        )
        if self.provider is not None:
            usage.provider = self.provider
        if self.metadata is not None:
            usage.metadata = self.metadata
        for key, debit in self.debits.items():
            if debit is None:
                continue
            wire = _WIRE_DEBIT[key]
            if debit.kind == "amount":
                setattr(usage, f"{wire}Amount", int(debit.value))
            elif debit.kind == "tag":
                setattr(usage, f"{wire}Tag", str(debit.value))
            else:
                setattr(usage, f"{wire}Expr", str(debit.value))
        return ev.StreamEventRequest(
            type=ev.AI_TOKEN_USAGE,
            userId=self.user_id,
            reportedTimestamp=self.reported_at,
            aiTokenUsage=usage,
            idempotencyKey=self.idempotency_key,
        )


def prepare_event(
    *,
    prefix: str,
    user_id: object,
    model: object,
    provider: object,
    tokens: Mapping[str, object],
    debits: Mapping[str, Debit | None],
    metadata: str | None,
    idempotency_key: object,
    index: int = 0,
) -> AiEvent:
    """Validate one event's per-call fields (``debits`` and ``metadata`` already validated)."""
    counts = {name: check_tokens(_name(prefix, name), tokens.get(name, 0)) for name in TOKEN_FIELDS}
    key = None if idempotency_key is None else _key(_name(prefix, "idempotency_key"), idempotency_key)
    return AiEvent(
        user_id=check_user_id(user_id, _name(prefix, "user_id")),
        model=check_model(_name(prefix, "model"), model),
        provider=check_provider(_name(prefix, "provider"), provider),
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        input_cache_tokens=counts["input_cache_tokens"],
        output_cache_tokens=counts["output_cache_tokens"],
        debits=dict(debits),
        metadata=metadata,
        idempotency_key=key if key is not None else str(uuid.uuid4()),
        # With the caller's own idempotency key the server stamps the time, so that sending the same
        # event again later is the same content (a duplicate, not a conflict). With a generated key
        # only our own retries repeat it, and they carry this timestamp unchanged.
        reported_at=int(time.time()) if key is None else 0,
        index=index,
    )


def _key(name: str, value: object) -> str:
    try:
        return check_idempotency_key(value)
    except ValidationError as e:
        raise ValidationError(name, e.problem, context=EVENT_CONTEXT) from None


# ----------------------------------------------------------------------------------------- delivery


def outcomes_of(response: ev.StreamEventResponse, count: int) -> list[ItemOutcome]:
    """Per-item outcomes of a StreamEvents call; an item kept for repricing is an
    :class:`~scrawn.errors.EventQuarantinedError` (delivered, never to be sent again)."""
    return stream_outcomes(response, count)


def send_events_sync(client: SyncClient, events: Sequence[AiEvent]) -> ev.StreamEventResponse:
    """One logical StreamEvents call with the client's automatic retries (same items, same keys)."""
    config = client._config
    requests = [e.to_proto() for e in events]
    retries = 0
    while True:
        try:
            return client._transport.client_stream(
                _core.STREAM_EVENTS, requests, ev.StreamEventResponse, client._headers, config.timeout
            )
        except ScrawnError as error:
            delay = _retry.delay_or_raise(config, error, retries)
            retries += 1
            time.sleep(delay)


async def send_events_async(client: AsyncClient, events: Sequence[AiEvent]) -> ev.StreamEventResponse:
    config = client._config
    requests = [e.to_proto() for e in events]
    retries = 0
    while True:
        try:
            return await client._transport.client_stream(
                _core.STREAM_EVENTS, requests, ev.StreamEventResponse, client._headers, config.timeout
            )
        except ScrawnError as error:
            delay = _retry.delay_or_raise(config, error, retries)
            retries += 1
            await asyncio.sleep(delay)


# ------------------------------------------------------------------------------------- error hooks


def hook_for(client: AnyClient, on_error: ErrorHook | None) -> ErrorHook | None:
    return on_error if on_error is not None else client._config.on_error


def call_hook_sync(hook: ErrorHook, error: ScrawnError, ctx: ErrorContext) -> None:
    """Run ``on_error`` from blocking code (an ``async def`` hook is run to completion); a hook that
    raises is logged, never propagated."""
    try:
        result = hook(error, ctx)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except Exception:
        log.exception("scrawn: on_error raised while handling %s", type(error).__name__)


async def call_hook_async(hook: ErrorHook, error: ScrawnError, ctx: ErrorContext) -> None:
    try:
        result = hook(error, ctx)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            await result
    except Exception:
        log.exception("scrawn: on_error raised while handling %s", type(error).__name__)


# -------------------------------------------------------------------------------- the track_ai buffer


def buffer_for(client: AnyClient) -> Tracker:
    """The client's AI event buffer: the core's :class:`~scrawn._track.Tracker` (bounded buffer, one
    background thread, batches, retries, ``on_error``, flush at exit) with a sender that speaks
    ``StreamEvents`` AI items. It never spools to disk (the spool file belongs to the client's own
    ``track()`` buffer)."""
    state = client._ai
    if state.tracker is not None:
        return state.tracker
    if client._closed:
        raise RuntimeError(f"track_ai() on a closed {type(client).__name__} client")
    with state.lock:
        if state.tracker is not None:
            return state.tracker
        config = dataclasses.replace(client._config, spool_path=None)
        transports: list[Transport] = []

        def send(events: Sequence[Any]) -> list[ItemOutcome]:
            if not transports:
                transports.append(Transport(config.base_url, http=config.worker_http))
            items: list[AiEvent] = list(events)
            response = transports[0].client_stream(
                _core.STREAM_EVENTS,
                [e.to_proto() for e in items],
                ev.StreamEventResponse,
                _config.headers(config),
                config.timeout,
            )
            return outcomes_of(response, len(items))

        loop: asyncio.AbstractEventLoop | None = None
        if isinstance(client, AsyncClient):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        tracker = Tracker(config, sender=send, hook_loop=(lambda: loop) if loop is not None else None)
        state.tracker, state.transports = tracker, transports
        return tracker


# ------------------------------------------------------------------------------- fork billers of a client

# The background billers of ``ai_token_stream_consumer(..., fork=True)`` streams are registered in the
# client's AI state, so that its ``flush()`` and ``close()`` wait for the chunks a finished stream still
# has to bill (a caller who never awaited ``stream.result()`` loses nothing when the client closes right
# after the stream).


def register_fork(client: ClientBase, biller: object) -> None:
    state = client._ai
    with state.lock:
        state.forks.add(biller)
