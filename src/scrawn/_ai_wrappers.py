"""Billing wrappers for the official ``openai`` and ``anthropic`` Python clients, and the functions that
read token usage from their responses. No provider package is imported here: responses are read by
attribute (or key, for plain dicts), so the wrappers work with any version that keeps the documented
field names.

Token mapping (Scrawn's ``inputTokens`` are *uncached* input tokens, DESIGN §6):

- OpenAI chat completions: ``prompt_tokens`` includes cached tokens, so ``input = prompt_tokens −
  prompt_tokens_details.cached_tokens − prompt_tokens_details.cache_write_tokens``, ``input_cache =
  cached_tokens``, ``output_cache = cache_write_tokens``, ``output = completion_tokens``.
- OpenAI responses: the same with ``input_tokens`` / ``input_tokens_details`` / ``output_tokens``.
- Anthropic messages: ``input_tokens`` (already uncached), ``cache_read_input_tokens`` → input cache,
  ``cache_creation_input_tokens`` → output cache (cache writes), ``output_tokens``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Final

from scrawn._ai_billing import (
    Biller,
    BillingOptions,
    _get,
    _model,
    anthropic_usage,
    build_options,
    openai_usage,
)
from scrawn._ai_events import (
    AiUsage,
    check_provider,
)
from scrawn._client_base import AnyClient
from scrawn._closing import AsyncStream, Stream
from scrawn.errors import ValidationError

log = logging.getLogger("scrawn.ai")

# ----------------------------------------------------------------------------------------- observers


class _Observer:
    """Reads usage from a provider's stream items. ``observe`` returns whether to hand the item on."""

    def __init__(self, request_model: Any) -> None:
        self.request_model = request_model
        self.usage: AiUsage | None = None
        self.response_id: str | None = None

    def observe(self, item: Any) -> bool:
        raise NotImplementedError


class _OpenAIChatObserver(_Observer):
    def __init__(self, request_model: Any, hide_usage_chunk: bool) -> None:
        super().__init__(request_model)
        self._hide = hide_usage_chunk

    def observe(self, item: Any) -> bool:
        if self.response_id is None:
            rid = _get(item, "id")
            self.response_id = rid if isinstance(rid, str) else None
        if _get(item, "usage") is None:
            return True
        self.usage = openai_usage(item)
        # The usage-only chunk we asked for (stream_options.include_usage): hidden unless the caller asked.
        return not (self._hide and not _get(item, "choices"))


class _OpenAIResponsesObserver(_Observer):
    def observe(self, item: Any) -> bool:
        response = _get(item, "response")
        if response is not None:
            rid = _get(response, "id")
            if isinstance(rid, str):
                self.response_id = rid
            if _get(response, "usage") is not None:
                self.usage = openai_usage(response)
        return True


class _AnthropicObserver(_Observer):
    def __init__(self, request_model: Any) -> None:
        super().__init__(request_model)
        self._fields: dict[str, Any] = {}
        self._model: str | None = None

    def observe(self, item: Any) -> bool:
        kind = _get(item, "type")
        if kind == "message_start":
            message = _get(item, "message")
            self._model = _model(message)
            rid = _get(message, "id")
            self.response_id = rid if isinstance(rid, str) else None
            usage = _get(message, "usage")
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ):
                self._fields[name] = _get(usage, name)
            self._update()
        elif kind == "message_delta":
            usage = _get(item, "usage")
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            ):
                value = _get(usage, name)
                if value is not None:  # cumulative counts
                    self._fields[name] = value
            self._update()
        return True

    def _update(self) -> None:
        found = anthropic_usage({"usage": self._fields, "model": self._model})
        self.usage = found


# ------------------------------------------------------------------------------------ billed streams


class _Billed:
    """What both billed streams share: the provider's stream, observed item by item, billed once
    (``finish``) when it ends or is closed; other attributes are the stream's."""

    def __init__(self, stream: Any, observer: _Observer, finish: Callable[[_Observer], None]) -> None:
        self._stream = stream
        self._observer = observer
        self._finish = finish
        self._billed = False
        self._gen = self._generate()

    def _generate(self) -> Any:
        raise NotImplementedError

    def _complete(self) -> None:
        if not self._billed:
            self._billed = True
            self._finish(self._observer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class BilledStream(_Billed, Stream[Any]):
    """A provider stream (``openai.Stream`` / ``anthropic.Stream``) that bills when it ends or is closed.
    Iterate it, use it as a context manager, ``close()`` it; other attributes are the stream's."""

    def _generate(self) -> Generator[Any, None, None]:
        try:
            for item in self._stream:
                if self._observer.observe(item):
                    yield item
        finally:
            self._complete()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._gen.close()
            self._complete()


class AsyncBilledStream(_Billed, AsyncStream[Any]):
    """An async provider stream (``openai.AsyncStream`` / ``anthropic.AsyncStream``) that bills when it
    ends or is closed."""

    async def _generate(self) -> AsyncGenerator[Any, None]:
        try:
            async for item in self._stream:
                if self._observer.observe(item):
                    yield item
        finally:
            self._complete()

    async def close(self) -> None:
        try:
            result = self._stream.close()
            if inspect.isawaitable(result):
                await result
        finally:
            await self._gen.aclose()
            self._complete()


class BilledStreamManager:
    """``client.messages.stream(...)`` / ``client.chat.completions.stream(...)``: the provider's stream
    manager, billing from the accumulated snapshot when the ``with`` (or ``async with``) block exits."""

    def __init__(self, manager: Any, finish: Callable[[Any], None]) -> None:
        self._manager = manager
        self._finish = finish
        self._stream: Any = None

    def __enter__(self) -> Any:
        self._stream = self._manager.__enter__()
        return self._stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return self._manager.__exit__(exc_type, exc, tb)
        finally:
            self._finish(self._stream)

    async def __aenter__(self) -> Any:
        self._stream = await self._manager.__aenter__()
        return self._stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Any:
        try:
            return await self._manager.__aexit__(exc_type, exc, tb)
        finally:
            self._finish(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


# ------------------------------------------------------------------------------------------- methods


def _include_usage(kwargs: dict[str, Any]) -> bool:
    """Ask OpenAI for the final usage chunk; returns whether the caller had asked for it already."""
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if options.get("include_usage") is True:
            return True
        kwargs["stream_options"] = {**options, "include_usage": True}
        return False
    kwargs["stream_options"] = {"include_usage": True}
    return False


def _snapshot(stream: Any, name: str) -> Any:
    try:
        return getattr(stream, name)
    except (AssertionError, AttributeError):  # nothing received yet
        return None


class _Route:
    """How to bill one provider method."""

    def __init__(self, biller: Biller, kind: str) -> None:
        self.biller = biller
        self.kind = kind

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        if self.kind.endswith("_manager"):
            return self._wrap_manager(method)
        return self._wrap_call(method)

    # what a non-streamed response's usage is
    def _usage(self, response: Any) -> AiUsage | None:
        return anthropic_usage(response) if self.kind.startswith("anthropic") else openai_usage(response)

    def _observer(self, kwargs: dict[str, Any]) -> _Observer:
        model = kwargs.get("model")
        if self.kind == "openai_chat":
            return _OpenAIChatObserver(model, hide_usage_chunk=not _include_usage(kwargs))
        if self.kind == "openai_responses":
            return _OpenAIResponsesObserver(model)
        return _AnthropicObserver(model)

    def _finish(self, options: BillingOptions) -> Callable[[_Observer], None]:
        def finish(observer: _Observer) -> None:
            self.biller.bill(options, observer.usage, observer.request_model, observer.response_id)

        return finish

    def _wrap_call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        # Sync and async clients alike: the SDKs' decorators hide whether a method is a coroutine
        # function, so look at what the call returned.
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            options = self.biller.options(kwargs)  # validated before the provider is called
            if options is None:
                return method(*args, **kwargs)
            observer = self._observer(kwargs) if kwargs.get("stream") is True else None
            model = kwargs.get("model")
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._after_async(result, options, observer, model)
            return self._after(result, options, observer, model)

        return call

    async def _after_async(
        self, result: Awaitable[Any], options: BillingOptions, observer: _Observer | None, model: Any
    ) -> Any:
        return self._after(await result, options, observer, model)

    def _after(self, response: Any, options: BillingOptions, observer: _Observer | None, model: Any) -> Any:
        if observer is not None:
            if hasattr(response, "__aiter__"):
                return AsyncBilledStream(response, observer, self._finish(options))
            return BilledStream(response, observer, self._finish(options))
        self.biller.bill(options, self._usage(response), model, _get(response, "id"))
        return response

    def _wrap_manager(self, method: Callable[..., Any]) -> Callable[..., Any]:
        openai = self.kind.startswith("openai")

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            options = self.biller.options(kwargs)
            if options is None:
                return method(*args, **kwargs)
            if openai:
                _include_usage(kwargs)
            model = kwargs.get("model")

            def finish(stream: Any) -> None:
                snapshot = _snapshot(
                    stream, "current_completion_snapshot" if openai else "current_message_snapshot"
                )
                usage = (
                    None
                    if snapshot is None
                    else (openai_usage(snapshot) if openai else anthropic_usage(snapshot))
                )
                self.biller.bill(options, usage, model, _get(snapshot, "id"))

            return BilledStreamManager(method(*args, **kwargs), finish)

        return call


OPENAI_ROUTES: Final[dict[tuple[str, ...], str]] = {
    ("chat", "completions", "create"): "openai_chat",
    ("chat", "completions", "parse"): "openai_chat",
    ("chat", "completions", "stream"): "openai_chat_manager",
    ("responses", "create"): "openai_responses",
    ("responses", "parse"): "openai_responses",
}
ANTHROPIC_ROUTES: Final[dict[tuple[str, ...], str]] = {
    ("messages", "create"): "anthropic_messages",
    ("messages", "parse"): "anthropic_messages",
    ("messages", "stream"): "anthropic_messages_manager",
}


class WrappedClient:
    """A provider client whose billable methods bill Scrawn; everything else is the client's own."""

    __slots__ = ("_scrawn_biller", "_scrawn_path", "_scrawn_prefixes", "_scrawn_routes", "_scrawn_target")

    def __init__(
        self,
        target: object,
        biller: Biller,
        routes: Mapping[tuple[str, ...], str],
        path: tuple[str, ...] = (),
    ) -> None:
        object.__setattr__(self, "_scrawn_target", target)
        object.__setattr__(self, "_scrawn_biller", biller)
        object.__setattr__(self, "_scrawn_routes", routes)
        object.__setattr__(self, "_scrawn_path", path)
        object.__setattr__(
            self, "_scrawn_prefixes", frozenset(route[:i] for route in routes for i in range(1, len(route)))
        )

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._scrawn_target, name)
        path = (*self._scrawn_path, name)
        kind = self._scrawn_routes.get(path)
        if kind is not None and callable(value):
            return _Route(self._scrawn_biller, kind).wrap(value)
        if path in self._scrawn_prefixes:
            return WrappedClient(value, self._scrawn_biller, self._scrawn_routes, path)
        if not self._scrawn_path and name in ("with_options", "copy") and callable(value):
            routes, biller = self._scrawn_routes, self._scrawn_biller

            @functools.wraps(value)
            def rewrap(*args: Any, **kwargs: Any) -> Any:
                return WrappedClient(value(*args, **kwargs), biller, routes)

            return rewrap
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._scrawn_target, name, value)

    def __dir__(self) -> list[str]:
        return dir(self._scrawn_target)

    def __repr__(self) -> str:
        return f"<scrawn-billed {self._scrawn_target!r}>"

    def __enter__(self) -> WrappedClient:
        self._scrawn_target.__enter__()
        return self

    def __exit__(self, *exc: object) -> bool | None:
        result: bool | None = self._scrawn_target.__exit__(*exc)
        return result

    async def __aenter__(self) -> WrappedClient:
        await self._scrawn_target.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        result: bool | None = await self._scrawn_target.__aexit__(*exc)
        return result


def wrap(
    provider_client: Any,
    scrawn_client: AnyClient,
    *,
    provider_name: str,
    routes: Mapping[tuple[str, ...], str],
    provider: object,
    user_id: object,
    debits: Mapping[str, object],
    metadata: object,
) -> WrappedClient:
    if provider_client is None or isinstance(provider_client, str | bytes | int | float):
        raise ValidationError(
            f"{provider_name}_client",
            f"must be an {provider_name} client object, not {type(provider_client).__name__}",
            context="Invalid option",
        )
    if isinstance(provider_client, WrappedClient):
        raise ValidationError(
            f"{provider_name}_client", "is already wrapped for billing", context="Invalid option"
        )
    name = check_provider("provider", provider) or provider_name
    defaults = build_options("", user_id=user_id, debits=debits, metadata=metadata)
    return WrappedClient(provider_client, Biller(scrawn_client, name, defaults), routes)


__all__ = [
    "AsyncBilledStream",
    "BilledStream",
    "BilledStreamManager",
    "WrappedClient",
]
