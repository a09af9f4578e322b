"""What every RPC handler shares: authentication from the request headers, and errors turned into
Connect/gRPC statuses with the right code (never UNKNOWN; INTERNAL carries a logged request id) and their
details (the field, the request id, the amounts: ``scrawn._error_details``)."""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, Generic, Literal, ParamSpec, TypeVar, overload

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from google.protobuf.message import Message
from protobuf.wkt import Any as PackedAny

from scrawn._error_details import details_of
from scrawn.errors import InternalError, OutOfRangeError, ScrawnError, UnavailableError
from scrawn.server.api_support import answer_json
from scrawn.server.db.engine import Database
from scrawn.server.db.errors import classify
from scrawn.server.keys.service import Caller, KeyService, Role
from scrawn.server.logs import request_id as current_request_id

log = logging.getLogger("scrawn.rpc")
# The roles that write billable data (events, usage records): live and test keys, each in its own mode.
INGEST_ROLES: tuple[Role, ...] = ("live", "test")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
P = ParamSpec("P")
T = TypeVar("T")
Resp = TypeVar("Resp")
M = TypeVar("M", bound=Message)
# A domain call with its checked inputs bound (``functools.partial`` by keyword), awaiting only
# ``(conn, project_id, mode)``: what ``Rpc._scoped`` runs.
Bound = Callable[[Any, str, str], Awaitable[T]]


def to_connect_error(error: ScrawnError) -> ConnectError:
    """The one way a Scrawn error leaves the server: its code, its message, its details."""
    return ConnectError(
        Code(error.status.code), error.message, details=[packed_detail(d) for d in details_of(error)]
    )


def packed_detail(detail: Message) -> PackedAny:
    """A Google-protobuf message as a Connect/gRPC error detail (connectrpc's details are protobuf-py)."""
    return PackedAny(
        type_url=f"type.googleapis.com/{detail.DESCRIPTOR.full_name}", value=detail.SerializeToString()
    )


def internal_error(exc: BaseException, where: str) -> ConnectError:
    """An unexpected exception as OUT_OF_RANGE, UNAVAILABLE or INTERNAL with a fresh request id (in the
    message, the ``google.rpc.RequestInfo`` detail and the log line)."""
    request_id = current_request_id()
    error: ScrawnError
    kind = classify(exc)
    if kind == "out_of_range":
        log.warning("value out of range in %s (request id %s): %s", where, request_id, exc)
        error = OutOfRangeError(
            "Value out of range: an amount or total passes what the database stores "
            f"(request id {request_id})",
            request_id=request_id,
        )
    elif kind == "unavailable":
        log.warning("database unavailable in %s (request id %s): %s", where, request_id, exc)
        error = UnavailableError(
            f"Database unavailable; retry (request id {request_id})", request_id=request_id
        )
    else:
        log.exception("internal error in %s (request id %s)", where, request_id, exc_info=exc)
        error = InternalError(f"Internal error (request id {request_id})", request_id=request_id)
    return to_connect_error(error)


def wire(message: type[M], row: object, /, **given: object) -> M:
    """``message`` (a generated type) of ``row``: each field from ``given`` where it is there (an amount as
    a decimal string, None as ""), else the row's snake_case attribute as it is (``userId`` ← ``user_id``);
    a field given None stays unset."""
    return message(**answer_json(row, _field_names(message.DESCRIPTOR), **given))


@functools.cache
def _field_names(descriptor: Any) -> tuple[str, ...]:
    """A generated message type's field names, in order (read once per type: RegisterEvent's answer is built
    on every call)."""
    return tuple(f.name for f in descriptor.fields)


def handler(fn: F) -> F:
    """Wrap an RPC method: domain errors keep their code; anything unexpected becomes INTERNAL."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ConnectError:
            raise
        except ScrawnError as e:
            raise to_connect_error(e) from None
        except Exception as e:
            raise internal_error(e, fn.__qualname__) from None

    return wrapper  # type: ignore[return-value]


class Rpc:
    """The base of each service's handlers: the database, and the keys that say who is calling."""

    def __init__(self, db: Database, keys: KeyService) -> None:
        self._db = db
        self._keys = keys

    async def _caller(
        self, ctx: RequestContext[Any, Any], roles: tuple[Role, ...] = (), action: str = ""
    ) -> Caller:
        """The authenticated caller; with ``roles``, one of them (PERMISSION_DENIED naming ``action``)."""
        caller = await authenticate(self._keys, ctx)
        if roles:
            caller.require(roles, action)
        return caller

    async def _scoped(
        self,
        access: Literal["read", "write"],
        caller: Caller,
        fn: Callable[Concatenate[Any, str, str, P], Awaitable[T]],
        *a: P.args,
        **kw: P.kwargs,
    ) -> T:
        """``fn(conn, project_id, mode, …)`` in a read or write transaction on the caller's project and
        mode (the write commits before the answer is sent)."""
        async with (self._db.write if access == "write" else self._db.read)() as conn:
            return await fn(conn, caller.project_id, caller.mode, *a, **kw)


class Scoped(Generic[T, Resp]):
    """A handler that is nothing but the usual steps, declared as a class attribute of an ``Rpc``
    (``get_balance = Scoped("read", lambda r: partial(…), _balance)``): the caller (with ``roles``, one of
    them), ``bind(request)`` (the request's inputs checked and bound to the domain call), that call run by
    ``Rpc._scoped`` in a read or write transaction (``access``), and ``answer`` of its result; errors as
    ``handler`` turns them."""

    def __init__(
        self,
        access: Literal["read", "write"],
        bind: Callable[[Any], Bound[T]],
        answer: Callable[[T], Resp],
        roles: tuple[Role, ...] = (),
        action: str = "",
    ) -> None:
        self._access, self._bind, self._answer = access, bind, answer
        self._roles, self._action = roles, action
        self._run: Callable[[Rpc, Any, RequestContext[Any, Any]], Awaitable[Resp]] | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        async def run(rpc: Rpc, request: Any, ctx: RequestContext[Any, Any]) -> Resp:
            caller = await rpc._caller(ctx, self._roles, self._action)
            return self._answer(await rpc._scoped(self._access, caller, self._bind(request)))

        run.__qualname__ = f"{owner.__qualname__}.{name}"  # the log's "internal error in …"
        self._run = handler(run)

    @overload
    def __get__(self, rpc: None, owner: type) -> Scoped[T, Resp]: ...
    @overload
    def __get__(
        self, rpc: Rpc, owner: type
    ) -> Callable[[Any, RequestContext[Any, Any]], Awaitable[Resp]]: ...
    def __get__(
        self, rpc: Rpc | None, owner: type
    ) -> Scoped[T, Resp] | Callable[[Any, RequestContext[Any, Any]], Awaitable[Resp]]:
        if rpc is None:
            return self
        assert self._run is not None, "a Scoped handler is a class attribute"
        return types.MethodType(self._run, rpc)


async def authenticate(keys: KeyService, ctx: RequestContext[Any, Any]) -> Caller:
    headers = ctx.request_headers
    return await keys.authenticate(headers.get("authorization"), headers.get("x-scrawn-mode"))


async def authenticate_stream(
    keys: KeyService, ctx: RequestContext[Any, Any], stream: AsyncIterator[Any]
) -> Caller:
    """Authenticate a client stream; on failure read the stream to its end first, because hypercorn
    drops the whole HTTP/2 connection when a response precedes the end of the request body."""
    try:
        return await authenticate(keys, ctx)
    except ScrawnError:
        async for _ in stream:
            pass
        raise
