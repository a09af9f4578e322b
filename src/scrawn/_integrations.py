"""The integrations both clients share (middleware, LLM billing): thin delegates to the module functions.
:mod:`scrawn.middleware` and :mod:`scrawn.ai` are imported on first use, so that ``import scrawn`` stays
light (neither imports the clients: this is not a cycle being dodged)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from scrawn._ai_track import track_ai
from scrawn._retry import ErrorHook

if TYPE_CHECKING:
    from scrawn._ai_events import AiUsage
    from scrawn._client_base import AnyClient
    from scrawn.middleware import Extractor, ScrawnMiddleware
    from scrawn.types import DebitInput, Metadata

P = TypeVar("P")


class Integrations:
    """Mixed into :class:`scrawn.Scrawn` and :class:`scrawn.AsyncScrawn`."""

    def _as_client(self) -> AnyClient:
        return self  # type: ignore[return-value]  # only ever mixed into the two clients

    def middleware_event_consumer(
        self,
        *,
        extractor: Extractor,
        whitelist: Sequence[str] | None = None,
        blacklist: Sequence[str] | None = None,
        bill_failed: bool = False,
        on_error: ErrorHook | None = None,
        raw_request: bool = False,
    ) -> ScrawnMiddleware:
        """Billing middleware for ASGI and WSGI apps (:func:`scrawn.middleware.middleware_event_consumer`
        with this client): ``app = client.middleware_event_consumer(extractor=...)(app)``."""
        from scrawn.middleware import middleware_event_consumer

        return middleware_event_consumer(
            self._as_client(),
            extractor=extractor,
            whitelist=whitelist,
            blacklist=blacklist,
            bill_failed=bill_failed,
            on_error=on_error,
            raw_request=raw_request,
        )

    def track_ai(
        self,
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
        """Queue one LLM call's token usage and return at once, never a coroutine (:func:`scrawn.ai.track_ai`
        with this client); ``flush()`` waits for delivery and ``close()`` delivers it (awaited on
        ``AsyncScrawn``)."""
        return track_ai(
            self._as_client(),
            user_id=user_id,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            input_cache_tokens=input_cache_tokens,
            output_cache_tokens=output_cache_tokens,
            usage=usage,
            provider=provider,
            input_debit=input_debit,
            output_debit=output_debit,
            input_cache_debit=input_cache_debit,
            output_cache_debit=output_cache_debit,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

    def wrap_openai(
        self,
        openai_client: P,
        *,
        user_id: str | None = None,
        input_debit: DebitInput | None = None,
        output_debit: DebitInput | None = None,
        input_cache_debit: DebitInput | None = None,
        output_cache_debit: DebitInput | None = None,
        metadata: Metadata | None = None,
        provider: str = "openai",
    ) -> P:
        """Bill an ``openai.OpenAI`` / ``AsyncOpenAI`` client's calls (:func:`scrawn.ai.wrap_openai`)."""
        from scrawn.ai import wrap_openai

        return wrap_openai(
            openai_client,
            self._as_client(),
            user_id=user_id,
            input_debit=input_debit,
            output_debit=output_debit,
            input_cache_debit=input_cache_debit,
            output_cache_debit=output_cache_debit,
            metadata=metadata,
            provider=provider,
        )

    def wrap_anthropic(
        self,
        anthropic_client: P,
        *,
        user_id: str | None = None,
        input_debit: DebitInput | None = None,
        output_debit: DebitInput | None = None,
        input_cache_debit: DebitInput | None = None,
        output_cache_debit: DebitInput | None = None,
        metadata: Metadata | None = None,
        provider: str = "anthropic",
    ) -> P:
        """Bill an ``anthropic.Anthropic`` / ``AsyncAnthropic`` client's calls
        (:func:`scrawn.ai.wrap_anthropic`)."""
        from scrawn.ai import wrap_anthropic

        return wrap_anthropic(
            anthropic_client,
            self._as_client(),
            user_id=user_id,
            input_debit=input_debit,
            output_debit=output_debit,
            input_cache_debit=input_cache_debit,
            output_cache_debit=output_cache_debit,
            metadata=metadata,
            provider=provider,
        )
