"""One definition of a call, the methods of both clients: ``name = sync_call(build)`` on the blocking side
and ``name = async_call(build)`` on the asyncio side turn a function that validates its arguments and builds
an :class:`~scrawn._retry.Rpc` (:mod:`scrawn._calls`, :mod:`scrawn._wallet`) into a method that sends it
through the owner's ``_rpc`` (the client's retries), with the build's name, signature and documentation."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Concatenate, ParamSpec, Protocol, TypeVar

from scrawn._calls import EventCall
from scrawn._core import EventResult
from scrawn._retry import Rpc

if TYPE_CHECKING:
    from scrawn._client_base import AsyncClient, SyncClient

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class SyncSender(Protocol):
    """What sends a call on the blocking side: a client, or a namespace of one (``client.wallet``)."""

    def _rpc(self, rpc: Rpc[R], /) -> R: ...


class AsyncSender(Protocol):
    """What sends a call on the asyncio side."""

    async def _rpc(self, rpc: Rpc[R], /) -> R: ...


def _as_method(method: Callable[..., object], build: Callable[..., object], without: str = "") -> None:
    """Give ``method`` the name, documentation and signature (``self`` first, in place of the parameter
    ``without`` if named; the result the call unpacks to) of the call ``build`` it sends, for ``help()``,
    IDEs and :mod:`inspect`."""
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str):  # "Rpc[UsageRecord]" -> "UsageRecord"; an event call -> "EventResult"
        returns = (
            "EventResult" if returns.startswith("EventCall[") else re.sub(r"^Rpc\[(.*)\]$", r"\1", returns)
        )
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(method, name, getattr(build, name))
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[this, *(p for p in signature.parameters.values() if p.name != without)],
        return_annotation=returns,
    )


def sync_call(build: Callable[P, Rpc[R]]) -> Callable[Concatenate[SyncSender, P], R]:
    """The :class:`scrawn.Scrawn` (or :class:`scrawn.Wallet`) method of a call: it sends ``build(...)``."""

    def method(self: SyncSender, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._rpc(build(*args, **kwargs))

    _as_method(method, build)
    return method


def async_call(
    build: Callable[P, Rpc[R]],
) -> Callable[Concatenate[AsyncSender, P], Coroutine[object, None, R]]:
    """The awaited method of a call (:class:`scrawn.AsyncScrawn`, :class:`scrawn.AsyncWallet`)."""

    async def method(self: AsyncSender, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._rpc(build(*args, **kwargs))

    _as_method(method, build)
    return method


def sync_event_call(build: Callable[P, EventCall[T]]) -> Callable[Concatenate[SyncClient, P], EventResult]:
    """The :class:`scrawn.Scrawn` method of an event call of :mod:`scrawn._calls`."""

    def method(self: SyncClient, /, *args: P.args, **kwargs: P.kwargs) -> EventResult:
        return self._event(build(*args, **kwargs))

    _as_method(method, build)
    return method


def async_event_call(
    build: Callable[P, EventCall[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[object, None, EventResult]]:
    """The :class:`scrawn.AsyncScrawn` method of an event call of :mod:`scrawn._calls`."""

    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> EventResult:
        return await self._event(build(*args, **kwargs))

    _as_method(method, build)
    return method
