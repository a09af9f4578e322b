"""Everything written once for both flavours of client, blocking and asyncio.

- A call: ``name = call(build)`` (or ``event_call``) in a class body turns a function that validates its
  arguments and builds an :class:`~scrawn._retry.Rpc` (:mod:`scrawn._calls`, :mod:`scrawn._wallet`) into a
  method of both flavours — a plain method on a :class:`Blocking` class (:class:`scrawn.Scrawn`,
  :class:`scrawn.Wallet`), an ``async def`` on an :class:`Asyncio` one — that sends it through the owner's
  ``_rpc_steps`` (the client's retries), with the build's name, signature and documentation.
- A procedure with I/O (the retries, ``flush``, ``close``): a generator of :data:`Step` values, run by
  :func:`run` on the blocking side and awaited through :func:`run_async` on the asyncio side; each flavour
  says what a step does (sleep, a blocking wait, the transport)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import (
    Any,
    ClassVar,
    Generic,
    ParamSpec,
    Protocol,
    Self,
    TypeAlias,
    TypeVar,
    overload,
)

from scrawn._calls import EventCall
from scrawn._core import EventResult
from scrawn._retry import Rpc

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

Step: TypeAlias = Callable[[], Any]
"""One I/O step of a procedure: called by :func:`run`; called and its result awaited by :func:`run_async`."""
Steps: TypeAlias = Generator[Step, Any, R]
"""A procedure written once: it yields its steps and is sent back each step's result (or the exception)."""


@dataclass
class _Procedure:
    """A procedure being run: what its last step gave (or raised), and its result once it returned."""

    steps: Steps[Any]
    value: object = None
    error: BaseException | None = None

    def next_step(self) -> Step | None:
        """Resume it with the last step's outcome: its next step, or ``None`` once it returned."""
        try:
            step = self.steps.send(self.value) if self.error is None else self.steps.throw(self.error)
        except StopIteration as done:
            self.value = done.value
            return None
        self.value, self.error = None, None
        return step


def run(steps: Steps[R]) -> R:
    """Run a procedure in the calling thread."""
    procedure = _Procedure(steps)
    while (step := procedure.next_step()) is not None:
        try:
            procedure.value = step()
        except BaseException as failed:  # handed to the procedure, which raises it or recovers
            procedure.error = failed
    return procedure.value  # type: ignore[return-value]


async def run_async(steps: Steps[R]) -> R:
    """Run a procedure on the running event loop: awaitable step results are awaited."""
    procedure = _Procedure(steps)
    while (step := procedure.next_step()) is not None:
        try:
            value = step()
            procedure.value = (await value) if inspect.isawaitable(value) else value
        except BaseException as failed:
            procedure.error = failed
    return procedure.value  # type: ignore[return-value]


def call_now(function: Callable[..., T], *args: object) -> T:
    """The blocking flavour's way to run a blocking function (the asyncio one: ``asyncio.to_thread``)."""
    return function(*args)


def in_thread(function: Callable[..., T], *args: object) -> Coroutine[object, None, T]:
    """The asyncio flavour's way: in a worker thread."""
    return asyncio.to_thread(function, *args)


# --------------------------------------------------------------------------------------------- calls


class Flavoured:
    """A class of one flavour; its :class:`Call` attributes (its own or inherited) become methods."""

    _is_async: ClassVar[bool | None] = None  # None: a class both flavours share (calls stay descriptors)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls._is_async is None:
            return
        for name in dir(cls):
            found = inspect.getattr_static(cls, name)
            if isinstance(found, Call):
                setattr(cls, name, found.method(cls._is_async))


class _Sender(Protocol):
    def _rpc_steps(self, rpc: Rpc[Any], /) -> Steps[Any]: ...
    def _event_steps(self, call: EventCall[Any], /) -> Steps[Any]: ...


class Call(Generic[P, R]):
    """One call of both flavours (see the module's documentation)."""

    def __init__(self, build: Callable[P, Rpc[R]] | Callable[P, EventCall[Any]], send: str) -> None:
        self._build = build
        self._send = send

    def method(self, is_async: bool) -> Callable[..., object]:
        build: Callable[..., object] = self._build
        send = self._send
        if is_async:

            async def method(self: _Sender, /, *args: object, **kwargs: object) -> object:
                return await run_async(getattr(self, send)(build(*args, **kwargs)))

        else:

            def method(self: _Sender, /, *args: object, **kwargs: object) -> object:  # type: ignore[misc]
                return run(getattr(self, send)(build(*args, **kwargs)))

        _as_method(method, build)
        return method

    @overload
    def __get__(self, obj: None, owner: type) -> Self: ...
    @overload
    def __get__(self, obj: Blocking, owner: type) -> Callable[P, R]: ...
    @overload
    def __get__(self, obj: Asyncio, owner: type) -> Callable[P, Coroutine[object, None, R]]: ...
    def __get__(self, obj: object, owner: type) -> object:
        if obj is None:
            return self
        return self.method(bool(getattr(owner, "_is_async", False))).__get__(obj, owner)


class Blocking(Flavoured):
    _is_async = False


class Asyncio(Flavoured):
    _is_async = True


def call(build: Callable[P, Rpc[R]]) -> Call[P, R]:
    """The method of a call: it sends ``build(...)`` with the owner's retries (its ``_rpc_steps``)."""
    return Call(build, "_rpc_steps")


def event_call(build: Callable[P, EventCall[T]]) -> Call[P, EventResult]:
    """The method of an event call of :mod:`scrawn._calls`: sent through the client's ``_event_steps``
    (``on_error`` sees its failures)."""
    return Call(build, "_event_steps")


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
