"""``track_ai`` (queue one AI call's token usage on the client's AI buffer, never blocking), ``flush_ai``
and ``close_ai`` — published by :mod:`scrawn.ai` and as the clients' ``track_ai`` method."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast, overload

from scrawn._ai_events import (
    AiUsage,
    buffer_for,
    check_client,
    check_debits,
    check_metadata,
    check_model,
    check_seconds,
    prepare_event,
)
from scrawn._client_base import AnyClient, AsyncClient, SyncClient
from scrawn.errors import ValidationError
from scrawn.types import DebitInput, Metadata

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
    tracker = None if client._ai_state is None else client._ai_state.tracker
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
        return asyncio.to_thread(client._ai.close_buffer, timeout)
    return client._ai.close_buffer(timeout)
