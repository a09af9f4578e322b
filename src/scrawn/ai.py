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

from collections.abc import AsyncIterable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from scrawn._ai_billing import anthropic_usage, bill_as, openai_usage
from scrawn._ai_events import (
    AiUsage,
    ErrorHook,
    check_client,
    check_hook,
    check_positive_int,
    check_seconds,
    debit_map,
)
from scrawn._ai_fork import AsyncForkedAiStream, ForkedAiStream, _TaskBiller, _ThreadBiller
from scrawn._ai_stream import (
    AiFailure,
    AiStreamResult,
    ExtractorError,
    Limits,
    check_defaults,
    consume_async,
    consume_sync,
)
from scrawn._ai_track import close_ai, flush_ai, track_ai
from scrawn._ai_wrap import wrap_anthropic, wrap_openai
from scrawn._ai_wrappers import WrappedClient
from scrawn._client_base import AnyClient, AsyncClient, SyncClient
from scrawn.errors import ValidationError
from scrawn.types import DebitInput, Metadata, StreamOptions, UsageChunk

if TYPE_CHECKING:
    from typing import Unpack

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

# -------------------------------------------------------------------------- ai_token_stream_consumer


@overload
def ai_token_stream_consumer(
    client: SyncClient,
    chunks: Iterable[T],
    *,
    fork: Literal[False] = ...,
    **options: Unpack[StreamOptions[T]],
) -> AiStreamResult: ...
@overload
def ai_token_stream_consumer(
    client: SyncClient, chunks: Iterable[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
) -> ForkedAiStream[T]: ...
@overload
def ai_token_stream_consumer(
    client: AnyClient,
    chunks: AsyncIterable[T],
    *,
    fork: Literal[False] = ...,
    **options: Unpack[StreamOptions[T]],
) -> Coroutine[object, None, AiStreamResult]: ...
@overload
def ai_token_stream_consumer(
    client: AnyClient, chunks: AsyncIterable[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
) -> AsyncForkedAiStream[T]: ...
@overload
def ai_token_stream_consumer(
    client: AsyncClient,
    chunks: Iterable[T],
    *,
    fork: Literal[False] = ...,
    **options: Unpack[StreamOptions[T]],
) -> Coroutine[object, None, AiStreamResult]: ...
@overload
def ai_token_stream_consumer(
    client: AsyncClient, chunks: Iterable[T], *, fork: Literal[True], **options: Unpack[StreamOptions[T]]
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
        debits=debit_map(input_debit, output_debit, input_cache_debit, output_cache_debit),
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
