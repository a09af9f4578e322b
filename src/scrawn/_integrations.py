"""The integrations both clients share (middleware, LLM billing): the module functions as methods, with the
client in place of their client parameter (their signatures and documentation copied, not written again).
:mod:`scrawn.middleware` imports neither the clients nor a web framework (Starlette or Werkzeug is
imported when a middleware is built), so the clients load it with this module; ``import scrawn`` alone
loads neither."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from scrawn._ai_track import track_ai
from scrawn._ai_wrap import wrap_anthropic, wrap_openai
from scrawn._client_base import AnyClient
from scrawn._methods import _as_method
from scrawn.middleware import middleware_event_consumer

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W")


def client_method(
    function: Callable[Concatenate[AnyClient, P], R],
) -> Callable[Concatenate[Integrations, P], R]:
    """A client method from a function whose first parameter ``client`` is the client."""

    def method(self: Integrations, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return function(self._as_client(), *args, **kwargs)

    _as_method(method, function, without="client")
    return method


def client_method_second(
    function: Callable[Concatenate[W, AnyClient, P], R],
) -> Callable[Concatenate[Integrations, W, P], R]:
    """A client method from a function whose second parameter ``scrawn_client`` is the client (the
    ``wrap_*`` functions: the provider's client comes first)."""

    def method(self: Integrations, /, *args: object, **kwargs: object) -> R:
        return function(*args, scrawn_client=self._as_client(), **kwargs)  # type: ignore[arg-type]

    _as_method(method, function, without="scrawn_client")
    return method


class Integrations:
    """Mixed into :class:`scrawn.Scrawn` and :class:`scrawn.AsyncScrawn`."""

    def _as_client(self) -> AnyClient:
        return self  # type: ignore[return-value]  # only ever mixed into the two clients

    def _stream_consumer(self, chunks: object, fork: bool, options: dict[str, Any]) -> Any:
        """The body of both clients' ``ai_token_stream_consumer`` (each types its own overloads)."""
        from scrawn.ai import ai_token_stream_consumer

        return ai_token_stream_consumer(self._as_client(), chunks, fork=fork, **options)  # type: ignore[call-overload]

    middleware_event_consumer = client_method(middleware_event_consumer)
    track_ai = client_method(track_ai)
    wrap_openai = client_method_second(wrap_openai)
    wrap_anthropic = client_method_second(wrap_anthropic)
