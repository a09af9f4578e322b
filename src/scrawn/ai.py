"""AI token billing: one ``AI_TOKEN_USAGE`` event per LLM call (or per usage chunk of a stream).

    from scrawn import Scrawn
    from scrawn.ai import track_ai, wrap_openai

    scrawn = Scrawn()
    track_ai(scrawn, user_id="user_123", model="gpt-4o-mini", input_tokens=1200, output_tokens=340)

    client = wrap_openai(OpenAI(), scrawn, user_id="user_123")   # every call is billed
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])

- :func:`track_ai` — non-blocking, like ``Scrawn.track()``: validated in the caller, delivered in the
  background in batches over ``event.v1.EventService/StreamEvents``; :func:`flush_ai` waits for delivery.
- :func:`ai_token_stream_consumer` — bill an iterable (or async iterable) of usage chunks; with
  ``fork=True`` the chunks are handed back to you while they are billed (bounded buffers).
- :func:`wrap_openai` / :func:`wrap_anthropic` — bill the official clients' calls (sync, async and
  streamed) from the usage the provider reports; calls with no user pass through unbilled.

Debits (``input_debit``, ``output_debit``, ``input_cache_debit``, ``output_cache_debit``) are totals for
that part of the call, in minor units (cents): a number, a ``tag("NAME")`` or an expression that may use
``input_tokens()``, ``output_tokens()``, ``input_cache_tokens()``, ``output_cache_tokens()`` — e.g.
``mul(tag("GPT_IN_PER_TOKEN"), input_tokens())``. With neither ``input_debit`` nor ``output_debit`` the
server prices the whole call (cache included) from its built-in model price book; when only one of them is
given the other comes from the price book, and an absent cache debit prices the cached tokens at 0.

Nothing here imports ``openai`` or ``anthropic``: the wrappers read responses by attribute.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, TypeVar, cast, overload

from scrawn._ai_events import (
    AiUsage,
    ErrorHook,
    buffer_for,
    check_client,
    check_debits,
    check_hook,
    check_metadata,
    check_model,
    check_positive_int,
    check_seconds,
    close_buffer,
    existing_buffer,
    prepare_event,
)
from scrawn._ai_stream import (
    AiFailure,
    AiStreamResult,
    AsyncForkedAiStream,
    ExtractorError,
    ForkedAiStream,
    Limits,
    _TaskBiller,
    _ThreadBiller,
    check_defaults,
    consume_async,
    consume_sync,
)
from scrawn._ai_wrappers import (
    ANTHROPIC_ROUTES,
    OPENAI_ROUTES,
    WrappedClient,
    anthropic_usage,
    bill_as,
    openai_usage,
    wrap,
)
from scrawn._client_base import AnyClient, AsyncClient, SyncClient
from scrawn.errors import ValidationError
from scrawn.types import DebitInput, Metadata, UsageChunk

__all__ = [
    "AiFailure",
    "AiStreamResult",
    "AiUsage",
    "AsyncForkedAiStream",
    "ExtractorError",
    "ForkedAiStream",
    "WrappedClient",
    "ai_token_stream_consumer",
    "anthropic_usage",
    "bill_as",
    "close_ai",
    "flush_ai",
    "openai_usage",
    "track_ai",
    "wrap_anthropic",
    "wrap_openai",
]

T = TypeVar("T")
P = TypeVar("P")

# ---------------------------------------------------------------------------------------- track_ai


def track_ai(
    client: AnyClient,
    *,
    user_id: str,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    input_cache_tokens: int | None = None,
    output_cache_tokens: int | None = None,
    usage: AiUsage | None = None,
    provider: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    idempotency_key: str | None = None,
) -> bool:
    """Queue one AI call's token usage for billing and return at once (no network in the caller).

    Give the token counts — ``input_tokens`` (uncached), ``output_tokens``, optionally
    ``input_cache_tokens`` (cache reads) and ``output_cache_tokens`` (cache writes) — or ``usage=`` an
    :class:`AiUsage` (see :func:`openai_usage`, :func:`anthropic_usage`), whose ``model`` is used when
    ``model`` is not given. Without debits the server prices the call from its model price book.

    Validation errors raise :class:`~scrawn.errors.ValidationError` naming the field. Returns ``False``
    when the buffer is full and the event was dropped. Delivery failures go to the client's
    ``on_error``. Works the same on :class:`~scrawn.Scrawn` and :class:`~scrawn.AsyncScrawn` (it is not
    a coroutine); :func:`flush_ai` waits until queued events are delivered."""
    check_client(client)
    counts: dict[str, object] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_cache_tokens": input_cache_tokens,
        "output_cache_tokens": output_cache_tokens,
    }
    if usage is not None:
        if not isinstance(usage, AiUsage):
            raise ValidationError(
                "usage",
                "must be a scrawn.ai.AiUsage (see openai_usage() / anthropic_usage()), "
                f"not {type(usage).__name__}",
                context="Event validation failed",
            )
        given = [name for name, value in counts.items() if value is not None]
        if given:
            raise ValidationError(
                given[0], "must not be given together with usage=", context="Event validation failed"
            )
        counts = {name: getattr(usage, name) for name in counts}
        if model is None:
            model = usage.model
    else:
        for name in ("input_tokens", "output_tokens"):
            if counts[name] is None:
                raise ValidationError(name, "is required (or pass usage=)", context="Event validation failed")
        counts = {name: 0 if value is None else value for name, value in counts.items()}
    if model is None:
        raise ValidationError("model", "is required", context="Event validation failed")
    check_model("model", model)
    event = prepare_event(
        prefix="",
        user_id=user_id,
        model=model,
        provider=provider,
        tokens=counts,
        debits=check_debits(
            "",
            {
                "input_debit": input_debit,
                "output_debit": output_debit,
                "input_cache_debit": input_cache_debit,
                "output_cache_debit": output_cache_debit,
            },
        ),
        metadata=check_metadata("metadata", metadata),
        idempotency_key=idempotency_key,
    )
    return buffer_for(client).put(cast(Any, event))


@overload
def flush_ai(client: SyncClient, timeout: float | None = None) -> bool: ...
@overload
def flush_ai(client: AsyncClient, timeout: float | None = None) -> Coroutine[object, None, bool]: ...
def flush_ai(client: AnyClient, timeout: float | None = None) -> bool | Coroutine[Any, Any, bool]:
    """Wait until every AI event queued (by :func:`track_ai` or a wrapped client) before this call is
    delivered, or failed for good and reported. ``False`` if ``timeout`` seconds passed first. Returns a
    coroutine for an :class:`~scrawn.AsyncScrawn`."""
    check_client(client)
    if timeout is not None:
        check_seconds("timeout", timeout)
    tracker = existing_buffer(client)
    if isinstance(client, AsyncClient):

        async def wait() -> bool:
            if tracker is None:
                return True
            return await asyncio.to_thread(tracker.flush, timeout)

        return wait()
    return True if tracker is None else tracker.flush(timeout)


@overload
def close_ai(client: SyncClient, timeout: float | None = None) -> bool: ...
@overload
def close_ai(client: AsyncClient, timeout: float | None = None) -> Coroutine[object, None, bool]: ...
def close_ai(client: AnyClient, timeout: float | None = None) -> bool | Coroutine[Any, Any, bool]:
    """Deliver the client's queued AI events (waiting at most ``timeout`` seconds) and stop its AI
    background worker; ``False`` when events were left undelivered. Without it they are delivered at
    interpreter exit (within the client's ``exit_timeout``). A coroutine for an
    :class:`~scrawn.AsyncScrawn`. The client's own ``close()`` does this too (and ``flush()`` waits like
    :func:`flush_ai`)."""
    check_client(client)
    if timeout is not None:
        check_seconds("timeout", timeout)
    if isinstance(client, AsyncClient):
        return asyncio.to_thread(close_buffer, client, timeout)
    return close_buffer(client, timeout)


# -------------------------------------------------------------------------- ai_token_stream_consumer


@overload
def ai_token_stream_consumer(
    client: SyncClient,
    chunks: Iterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[False] = ...,
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> AiStreamResult: ...
@overload
def ai_token_stream_consumer(
    client: SyncClient,
    chunks: Iterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[True],
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> ForkedAiStream[T]: ...
@overload
def ai_token_stream_consumer(
    client: AnyClient,
    chunks: AsyncIterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[False] = ...,
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> Coroutine[object, None, AiStreamResult]: ...
@overload
def ai_token_stream_consumer(
    client: AnyClient,
    chunks: AsyncIterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[True],
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> AsyncForkedAiStream[T]: ...
@overload
def ai_token_stream_consumer(
    client: AsyncClient,
    chunks: Iterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[False] = ...,
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> Coroutine[object, None, AiStreamResult]: ...
@overload
def ai_token_stream_consumer(
    client: AsyncClient,
    chunks: Iterable[T],
    *,
    user_id: str | None = ...,
    model: str | None = ...,
    provider: str | None = ...,
    input_debit: DebitInput | None = ...,
    output_debit: DebitInput | None = ...,
    input_cache_debit: DebitInput | None = ...,
    output_cache_debit: DebitInput | None = ...,
    metadata: Metadata | None = ...,
    fork: Literal[True],
    extract: Callable[[T], UsageChunk | None] | None = ...,
    batch_size: int = ...,
    buffer_size: int = ...,
    flush_interval: float = ...,
    on_error: ErrorHook | None = ...,
) -> AsyncForkedAiStream[T]: ...
def ai_token_stream_consumer(
    client: AnyClient,
    chunks: Iterable[Any] | AsyncIterable[Any],
    *,
    user_id: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    fork: bool = False,
    extract: Callable[[Any], UsageChunk | None] | None = None,
    batch_size: int = 500,
    buffer_size: int = 1000,
    flush_interval: float = 0.5,
    on_error: ErrorHook | None = None,
) -> Any:
    """Bill a stream of token-usage chunks over ``StreamEvents``: one ``AI_TOKEN_USAGE`` event per chunk.

    A chunk is a mapping — ``{"input_tokens": 12, "output_tokens": 3}``, optionally with ``user_id``,
    ``model``, ``provider``, the four debits, ``metadata`` and ``idempotency_key`` (the TS SDK's camelCase
    keys work too) — or an :class:`AiUsage`. The keyword arguments are defaults for every chunk. With
    ``extract=`` each item of the source is first mapped by ``extract(item)`` (``None``: not billed), so
    a provider's own stream can be passed in: ``extract=openai_usage``.

    Sync or async follows the source and the client: an async iterable, or an
    :class:`~scrawn.AsyncScrawn`, gives the asyncio flavour.

    - ``fork=False``: consume the source now; returns an :class:`AiStreamResult` (a coroutine in the
      asyncio flavour). A chunk that fails validation raises :class:`~scrawn.errors.ValidationError`
      naming ``chunks[i].<field>``, as does an exception of the source — after the chunks read before it
      were billed. A failure of a whole ``StreamEvents`` call raises unless ``on_error`` handles it.
    - ``fork=True``: returns a :class:`ForkedAiStream` (:class:`AsyncForkedAiStream`) that yields every
      item of the source as it arrives, while a background worker bills it. Nothing the billing does
      ever raises into your iteration: failures go to ``on_error`` (or the log) and into the result of
      ``stream.result()`` (``await stream.result()``). At most ``buffer_size`` chunks wait for billing;
      beyond that your iteration waits for the billing to catch up (nothing is dropped).

    Every argument is validated before anything is read or sent."""
    check_client(client)
    if isinstance(chunks, str | bytes | bytearray | Mapping) or not isinstance(
        chunks, Iterable | AsyncIterable
    ):
        raise ValidationError(
            "chunks",
            f"must be an iterable or async iterable of usage chunks, not {type(chunks).__name__}",
            context="Invalid argument",
        )
    if not isinstance(fork, bool):
        raise ValidationError("fork", "must be a bool", context="Invalid option")
    limits = Limits(
        batch_size=check_positive_int("batch_size", batch_size, high=10_000),
        buffer_size=check_positive_int("buffer_size", buffer_size),
        flush_interval=check_seconds("flush_interval", flush_interval),
    )
    hook = check_hook("on_error", on_error)
    defaults = check_defaults(
        user_id=user_id,
        model=model,
        provider=provider,
        debits={
            "input_debit": input_debit,
            "output_debit": output_debit,
            "input_cache_debit": input_cache_debit,
            "output_cache_debit": output_cache_debit,
        },
        metadata=metadata,
        extract=extract,
    )
    use_async = isinstance(chunks, AsyncIterable) or isinstance(client, AsyncClient)
    if not use_async:
        assert isinstance(client, SyncClient) and isinstance(chunks, Iterable)
        if fork:
            return ForkedAiStream(
                chunks, defaults, _ThreadBiller(client, _hook(client, hook), limits), _hook(client, hook)
            )
        return consume_sync(client, chunks, defaults, limits, hook)
    if fork:
        return AsyncForkedAiStream(
            chunks, defaults, _TaskBiller(client, _hook(client, hook), limits), _hook(client, hook)
        )
    return consume_async(client, chunks, defaults, limits, hook)


def _hook(client: AnyClient, hook: ErrorHook | None) -> ErrorHook | None:
    return hook if hook is not None else client._config.on_error


# ------------------------------------------------------------------------------------------ wrappers


def wrap_openai(
    openai_client: P,
    scrawn_client: AnyClient,
    *,
    user_id: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    provider: str = "openai",
) -> P:
    """Bill an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client's calls to Scrawn.

    Billed: ``chat.completions.create`` (streamed too), ``chat.completions.parse``,
    ``chat.completions.stream``, ``responses.create`` (streamed too) and ``responses.parse``. Every other
    attribute is the client's own. A call is billed to the per-call ``scrawn_user_id=``, else the user of
    an enclosing :func:`bill_as` block, else ``user_id``; with none of them it passes through untouched.
    Per-call ``scrawn_input_debit=`` / ``scrawn_output_debit=`` / ``scrawn_input_cache_debit=`` /
    ``scrawn_output_cache_debit=`` / ``scrawn_metadata=`` override the defaults given here. The
    ``scrawn_*`` arguments are removed before the call reaches OpenAI and validated before it is made.

    A billed streamed chat completion asks OpenAI for the final usage chunk
    (``stream_options.include_usage``); unless you asked for it yourself, that chunk is not passed on.
    Usage is queued with :func:`track_ai` when the call (or the stream) ends, so billing never slows or
    fails the call; a stream closed before OpenAI reported usage is not billed (logged)."""
    check_client(scrawn_client)
    wrapped = wrap(
        openai_client,
        scrawn_client,
        provider_name="openai",
        routes=OPENAI_ROUTES,
        provider=provider,
        user_id=user_id,
        debits={
            "input_debit": input_debit,
            "output_debit": output_debit,
            "input_cache_debit": input_cache_debit,
            "output_cache_debit": output_cache_debit,
        },
        metadata=metadata,
    )
    return wrapped  # type: ignore[return-value]


def wrap_anthropic(
    anthropic_client: P,
    scrawn_client: AnyClient,
    *,
    user_id: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    provider: str = "anthropic",
) -> P:
    """Bill an ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` client's calls to Scrawn.

    Billed: ``messages.create`` (streamed too), ``messages.parse`` and ``messages.stream`` (billed from
    the accumulated message when the ``with`` block exits). Users and overrides as :func:`wrap_openai`.
    ``cache_read_input_tokens`` are billed as input cache tokens and ``cache_creation_input_tokens`` as
    output cache tokens (cache writes), each with its own debit."""
    check_client(scrawn_client)
    wrapped = wrap(
        anthropic_client,
        scrawn_client,
        provider_name="anthropic",
        routes=ANTHROPIC_ROUTES,
        provider=provider,
        user_id=user_id,
        debits={
            "input_debit": input_debit,
            "output_debit": output_debit,
            "input_cache_debit": input_cache_debit,
            "output_cache_debit": output_cache_debit,
        },
        metadata=metadata,
    )
    return wrapped  # type: ignore[return-value]
