"""Bill HTTP requests: ASGI (Starlette, FastAPI, …) and WSGI (Flask, Django, …) middleware.

    from scrawn import Scrawn
    from scrawn.middleware import ScrawnASGIMiddleware

    scrawn = Scrawn()
    app.add_middleware(
        ScrawnASGIMiddleware,
        client=scrawn,
        extractor=lambda request: {"user_id": request.headers["x-user-id"], "debit": 1},
        whitelist=["/api/**"],
        blacklist=["/api/health"],
    )

For every request whose path passes ``whitelist`` / ``blacklist`` and whose response succeeded (status
200–399, or any status with ``bill_failed=True``), the middleware calls ``extractor(request)`` *after the
response has been sent* and queues a ``BASIC_USAGE`` event of type ``MIDDLEWARE_CALL`` with the client's
non-blocking ``track()`` buffer. Billing never fails or slows a request: the extractor's exceptions and
invalid results are reported to ``on_error`` (or logged) and the request is left alone; delivery happens in
the client's background thread, so a billing server that is down costs the request nothing.

Path patterns follow the TS SDK's ``matchPath``: see :func:`match_path`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, TypeAlias, TypeVar, overload

from scrawn._ai_stream import ExtractorError
from scrawn._client_base import AnyClient
from scrawn._methods import Steps, run, run_async
from scrawn._paths import check_patterns, match_path
from scrawn._retry import ErrorContext, ErrorHook
from scrawn.errors import ScrawnError, ValidationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from starlette.requests import Request as StarletteRequest
    from werkzeug.wrappers import Request as WerkzeugRequest

__all__ = [
    "ExtractorError",
    "ScrawnASGIMiddleware",
    "ScrawnMiddleware",
    "ScrawnWSGIMiddleware",
    "match_path",
    "middleware_event_consumer",
]

log = logging.getLogger("scrawn.middleware")

OPERATION: Final = "middleware_event_consumer"
_CONTEXT: Final = "Invalid middleware option"
_EXTRACTED_KEYS: Final = frozenset({"user_id", "debit", "metadata"})

Scope: TypeAlias = MutableMapping[str, object]
Message: TypeAlias = MutableMapping[str, object]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# What an extractor returns: {"user_id": ..., "debit": ..., "metadata": ...} (scrawn.types.MiddlewareEvent)
# or None (not billed); an async extractor returns it awaitably.
Extracted: TypeAlias = Mapping[str, object] | Awaitable[Mapping[str, object] | None] | None
ASGIExtractor: TypeAlias = "Callable[[StarletteRequest], Extracted] | Callable[[Scope], Extracted]"
"""``extractor(request)`` of the ASGI middleware: a ``starlette.requests.Request``, or with
``raw_request=True`` the ASGI scope."""
WSGIExtractor: TypeAlias = "Callable[[WerkzeugRequest], Extracted] | Callable[[WSGIEnvironment], Extracted]"
"""``extractor(request)`` of the WSGI middleware: a ``werkzeug.wrappers.Request``, or with
``raw_request=True`` the WSGI environ."""
Extractor: TypeAlias = "ASGIExtractor | WSGIExtractor"
AppT = TypeVar("AppT")
ExtractorT = TypeVar("ExtractorT")


# ------------------------------------------------------------------------------------------ billing


class _Billing:
    """What both middlewares share: the options (validated once) and the billing of one request."""

    def __init__(
        self,
        client: object,
        extractor: object,
        whitelist: object,
        blacklist: object,
        bill_failed: object,
        on_error: object,
    ) -> None:
        if not isinstance(client, AnyClient):
            raise ValidationError(
                "client",
                f"must be a scrawn.Scrawn or scrawn.AsyncScrawn, not {type(client).__name__}",
                context=_CONTEXT,
            )
        if not callable(extractor):
            raise ValidationError(
                "extractor",
                "must be callable as extractor(request) -> {'user_id': ..., 'debit': ...} | None",
                context=_CONTEXT,
            )
        if not isinstance(bill_failed, bool):
            raise ValidationError("bill_failed", "must be a bool", context=_CONTEXT)
        if on_error is not None and not callable(on_error):
            raise ValidationError(
                "on_error", "must be callable as on_error(error, context)", context=_CONTEXT
            )
        self.client: AnyClient = client
        self.extractor: Callable[[Any], object] = extractor
        self.whitelist = check_patterns("whitelist", whitelist)
        self.blacklist = check_patterns("blacklist", blacklist)
        self.bill_failed = bill_failed
        self.on_error: ErrorHook | None = on_error

    def wants(self, path: str) -> bool:
        """The TS SDK's order: a non-empty whitelist must match; then the blacklist must not."""
        if self.whitelist and not any(match_path(path, p) for p in self.whitelist):
            return False
        return not (self.blacklist and any(match_path(path, p) for p in self.blacklist))

    def billable(self, status: int | None) -> bool:
        if self.bill_failed:
            return True
        return status is not None and 200 <= status < 400

    def extracted(self, value: object) -> None:
        """Validate what the extractor returned and queue the event (non-blocking)."""
        if value is None:
            return
        if not isinstance(value, Mapping):
            raise ValidationError(
                "extractor",
                f"must return a mapping with user_id and debit, or None; got {type(value).__name__}",
                context="Event validation failed",
            )
        unknown = sorted(str(k) for k in value if k not in _EXTRACTED_KEYS)
        if unknown:
            raise ValidationError(
                f"extractor.{unknown[0][:40]}",
                "is not a known key (expected user_id, debit and optionally metadata)",
                context="Event validation failed",
            )
        for key in ("user_id", "debit"):
            if key not in value:
                raise ValidationError(f"extractor.{key}", "is required", context="Event validation failed")
        self.client._track_usage(value["user_id"], value["debit"], value.get("metadata"), "MIDDLEWARE_CALL")

    def failure(self, error: BaseException) -> ScrawnError:
        if isinstance(error, ScrawnError):
            return error
        wrapped = ExtractorError(f"extractor raised {type(error).__name__}: {error}", field="extractor")
        wrapped.__cause__ = error
        return wrapped

    # The billing of one request and the report of its failure, each written once as steps
    # (:mod:`scrawn._methods`): the ASGI middleware awaits them (``run_async`` awaits an async
    # extractor's or ``on_error``'s result), the WSGI one runs them (``run``: such a result is then run to
    # completion with ``asyncio.run``).

    def bill(self, request: Callable[[], object]) -> Steps[None]:
        """Call the extractor on ``request()`` and queue what it returned; failures go to :meth:`report`."""
        try:
            value = yield lambda: self.extractor(request())
            if inspect.isawaitable(value):  # only when run: run_async has awaited it
                value = yield partial(asyncio.run, _value(value))
            self.extracted(value)
        except Exception as error:
            yield from self.report(error)

    def report(self, error: BaseException) -> Steps[None]:
        """Hand a failure to ``on_error`` (the middleware's, else the client's), or log it."""
        failure = self.failure(error)
        hook = self.on_error if self.on_error is not None else self.client._config.on_error
        if hook is None:
            log.warning("scrawn: a request was not billed: %s", failure.message, exc_info=error)
            return
        try:
            result = yield partial(hook, failure, ErrorContext(OPERATION, "", None, 0))
            if inspect.isawaitable(result):  # only when run: run_async has awaited it
                yield partial(asyncio.run, _value(result))
        except Exception:
            log.exception("scrawn: on_error raised while handling a middleware failure")


async def _value(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


# The request type the extractor gets per kind of app (without raw_request=True): (module, the package
# to install, what raw_request=True hands the extractor instead).
_REQUEST_TYPES: Final = {
    "an ASGI": ("starlette.requests", "starlette", "the ASGI scope"),
    "a WSGI": ("werkzeug.wrappers", "werkzeug", "the WSGI environ"),
}


def _setup(app: object, kind: str, raw_request: object, options: tuple[Any, ...]) -> tuple[_Billing, Any]:
    """Both middlewares' constructor, checked in this order: the app, ``raw_request``, the billing options,
    then the request type (``None``: the extractor gets the raw scope or environ)."""
    if not callable(app):
        raise ValidationError("app", f"must be {kind} application", context=_CONTEXT)
    if not isinstance(raw_request, bool):
        raise ValidationError("raw_request", "must be a bool", context=_CONTEXT)
    billing = _Billing(*options)
    if raw_request:
        return billing, None
    module, package, raw = _REQUEST_TYPES[kind]
    try:
        return billing, importlib.import_module(module).Request
    except ImportError:  # pragma: no cover - exercised without starlette/werkzeug only
        raise ValidationError(
            "raw_request",
            f"must be True when {package} is not installed (the extractor then gets {raw})",
            context=_CONTEXT,
        ) from None


class _Middleware(Generic[AppT, ExtractorT]):
    """The constructor both middlewares share (their public signature) and the billing of one request."""

    _KIND: ClassVar[str]  # "an ASGI" / "a WSGI": a key of _REQUEST_TYPES
    _REQUEST_ARGS: ClassVar[tuple[object, ...]] = ()  # what the request type takes after the scope/environ

    def __init__(
        self,
        app: AppT,
        *,
        client: AnyClient,
        extractor: ExtractorT,
        whitelist: Sequence[str] | None = None,
        blacklist: Sequence[str] | None = None,
        bill_failed: bool = False,
        on_error: ErrorHook | None = None,
        raw_request: bool = False,
    ) -> None:
        self.app = app
        self._billing, self._request_class = _setup(
            app, self._KIND, raw_request, (client, extractor, whitelist, blacklist, bill_failed, on_error)
        )

    def _bill_steps(self, raw: Any) -> Steps[None]:
        """Bill the request of the ASGI scope or WSGI environ ``raw`` (itself with ``raw_request=True``)."""
        if self._request_class is None:
            return self._billing.bill(lambda: raw)
        return self._billing.bill(partial(self._request_class, raw, *self._REQUEST_ARGS))


# --------------------------------------------------------------------------------------------- ASGI


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


class ScrawnASGIMiddleware(_Middleware[ASGIApp, ASGIExtractor]):
    """ASGI middleware: ``app.add_middleware(ScrawnASGIMiddleware, client=scrawn, extractor=...)`` in
    Starlette/FastAPI, or ``app = ScrawnASGIMiddleware(app, client=..., extractor=...)`` for any ASGI app.

    ``extractor(request)`` receives a ``starlette.requests.Request`` for the request's scope (the same
    scope the app saw, so ``request.state``, ``request.path_params`` and ``request.user`` set by the app or
    inner middleware are visible), or the raw ASGI ``scope`` with ``raw_request=True`` (no Starlette
    needed). It runs after the response was sent; the request body is no longer readable then. It may be
    ``async``; a slow synchronous extractor blocks the event loop. Return ``{"user_id": ..., "debit": ...,
    "metadata": ...}`` (metadata optional) or ``None`` to not bill the request. Only ``http`` requests are
    billed (``websocket`` and ``lifespan`` pass through)."""

    _KIND = "an ASGI"
    _REQUEST_ARGS = (_disconnected,)  # Request(scope, receive): the body was read by the app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope.get("type") != "http" or not self._billing.wants(path if isinstance(path, str) else ""):
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def send_status(message: Message) -> None:
            nonlocal status
            if message.get("type") == "http.response.start":
                code = message.get("status")
                status = code if isinstance(code, int) else None
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            if self._billing.bill_failed:
                await self._bill(scope)
            raise
        if self._billing.billable(status):
            await self._bill(scope)

    async def _bill(self, scope: Scope) -> None:
        await run_async(self._bill_steps(scope))


# --------------------------------------------------------------------------------------------- WSGI


class _BilledBody:
    """The app's response iterable; bills (once) when the server closes it, as WSGI servers must."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[bool], None]) -> None:
        self._body = body
        self._on_close = on_close
        self._failed = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._failed)


class ScrawnWSGIMiddleware(_Middleware["WSGIApplication", WSGIExtractor]):
    """WSGI middleware: ``app.wsgi_app = ScrawnWSGIMiddleware(app.wsgi_app, client=..., extractor=...)``
    in Flask, ``application = ScrawnWSGIMiddleware(get_wsgi_application(), ...)`` in Django's ``wsgi.py``.

    ``extractor(request)`` receives a ``werkzeug.wrappers.Request`` for the request's WSGI environ (the
    same dict the app saw: values the app put in ``request.environ`` are visible), or the raw ``environ``
    with ``raw_request=True`` (no Werkzeug needed, e.g. for Django). It runs when the server closes the
    response — after the body was sent — in the request's thread; Flask's ``g`` and ``flask.request`` are
    gone by then, so pass values through ``request.environ`` (e.g. ``environ["scrawn.user_id"]``).
    Return ``{"user_id": ..., "debit": ..., "metadata": ...}`` or ``None`` to not bill the request."""

    _KIND = "a WSGI"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not self._billing.wants(environ.get("PATH_INFO", "") or "/"):
            return self.app(environ, start_response)
        status: list[int | None] = [None]

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                status[0] = int(status_line.split(None, 1)[0])
            except (ValueError, IndexError):
                status[0] = None
            if exc_info is not None:
                return start_response(status_line, headers, exc_info)
            return start_response(status_line, headers)

        try:
            body = self.app(environ, start)
        except Exception:
            if self._billing.bill_failed:
                self._bill(environ)
            raise

        def on_close(failed: bool) -> None:
            if self._billing.bill_failed or (not failed and self._billing.billable(status[0])):
                self._bill(environ)

        return _BilledBody(body, on_close)

    def _bill(self, environ: WSGIEnvironment) -> None:
        run(self._bill_steps(environ))


# ---------------------------------------------------------------------------------------- factory


class ScrawnMiddleware:
    """The TS SDK's ``middlewareEventConsumer(...)`` result: call it on an app to wrap it —
    ``app = consumer(app)`` — ASGI or WSGI detected from the app (an ``async`` callable is ASGI), or
    say which with :meth:`asgi` / :meth:`wsgi`. Starlette accepts it directly:
    ``app.add_middleware(consumer)``."""

    def __init__(
        self,
        client: AnyClient,
        *,
        extractor: Extractor,
        whitelist: Sequence[str] | None = None,
        blacklist: Sequence[str] | None = None,
        bill_failed: bool = False,
        on_error: ErrorHook | None = None,
        raw_request: bool = False,
    ) -> None:
        _Billing(client, extractor, whitelist, blacklist, bill_failed, on_error)  # validate now
        if not isinstance(raw_request, bool):
            raise ValidationError("raw_request", "must be a bool", context=_CONTEXT)
        self._kwargs: dict[str, Any] = {
            "client": client,
            "extractor": extractor,
            "whitelist": whitelist,
            "blacklist": blacklist,
            "bill_failed": bill_failed,
            "on_error": on_error,
            "raw_request": raw_request,
        }

    def asgi(self, app: ASGIApp) -> ScrawnASGIMiddleware:
        return ScrawnASGIMiddleware(app, **self._kwargs)

    def wsgi(self, app: WSGIApplication) -> ScrawnWSGIMiddleware:
        return ScrawnWSGIMiddleware(app, **self._kwargs)

    @overload
    def __call__(self, app: ASGIApp) -> ScrawnASGIMiddleware: ...
    @overload
    def __call__(self, app: WSGIApplication) -> ScrawnWSGIMiddleware: ...
    def __call__(self, app: ASGIApp | WSGIApplication) -> ScrawnASGIMiddleware | ScrawnWSGIMiddleware:
        kind = _app_kind(app)  # detected at run time: the two kinds are not told apart by type
        if kind == "asgi":
            return self.asgi(app)  # type: ignore[arg-type]
        if kind == "wsgi":
            return self.wsgi(app)  # type: ignore[arg-type]
        raise ValidationError(
            "app",
            "is neither recognisably ASGI (an async callable) nor WSGI; use .asgi(app) or .wsgi(app)",
            context=_CONTEXT,
        )


def _app_kind(app: object) -> str | None:
    if not callable(app):
        return None
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi"
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    return {2: "wsgi", 3: "asgi"}.get(len(params))


def middleware_event_consumer(
    client: AnyClient,
    *,
    extractor: Extractor,
    whitelist: Sequence[str] | None = None,
    blacklist: Sequence[str] | None = None,
    bill_failed: bool = False,
    on_error: ErrorHook | None = None,
    raw_request: bool = False,
) -> ScrawnMiddleware:
    """The TS SDK's ``middlewareEventConsumer``: a middleware factory for ASGI and WSGI apps.

    ``extractor(request)`` returns ``{"user_id": ..., "debit": ..., "metadata": ...}`` or ``None``;
    ``whitelist`` (only these paths are billed) and ``blacklist`` (these are not) take :func:`match_path`
    patterns; only responses with status 200–399 are billed unless ``bill_failed=True``. ``on_error(error,
    context)`` sees extractor failures (default: the client's ``on_error``, else the log). Every option is
    validated here, before any request."""
    return ScrawnMiddleware(
        client,
        extractor=extractor,
        whitelist=whitelist,
        blacklist=blacklist,
        bill_failed=bill_failed,
        on_error=on_error,
        raw_request=raw_request,
    )
