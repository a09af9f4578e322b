"""The smallest Connect protocol client the SDK needs, over httpx (https://connectrpc.com/docs/protocol).

- Unary: ``POST /<pkg>.<Service>/<Method>`` with ``content-type: application/proto`` and the binary
  message as the body. 200 carries the response message; any other status carries the error as JSON
  ``{"code": "...", "message": "...", "details": [...]}`` (read by ``scrawn._error_details``).
- Client streaming: ``content-type: application/connect+proto`` and a body of envelopes (1 flag byte,
  4-byte big-endian length, message). The response is envelopes too: the message, then an end-of-stream
  envelope (flag ``0x02``) holding JSON ``{"error": {...}, "metadata": {...}}`` — ``{}`` on success.

Parsing is pure (``parse_unary`` / ``parse_stream``); ``Transport`` and ``AsyncTransport`` only move bytes
and turn httpx failures into :class:`ConnectionFailedError` / :class:`RequestTimeoutError`. An error answer's
``retry-after`` (HTTP header, or the end-of-stream metadata of a streaming call) is kept on the error as
``retry_after`` seconds.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import struct
import time
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from typing import Any, Final, Generic, TypeVar, overload

import httpx
from google.protobuf.message import DecodeError, Message

from scrawn._codes import CODES_BY_HTTP
from scrawn._error_details import field_from_message as field_from_message
from scrawn._error_details import read_details, request_id_header, typed_error
from scrawn._error_details import request_id_from as request_id_from
from scrawn.errors import (
    ConnectionFailedError,
    InternalError,
    RequestTimeoutError,
    ScrawnError,
    ValidationError,
)

M = TypeVar("M", bound=Message)
H = TypeVar("H", httpx.Client, httpx.AsyncClient)

PROTO: Final = "application/proto"
CONNECT_PROTO: Final = "application/connect+proto"
PROTOCOL_VERSION: Final = "1"
FLAG_COMPRESSED: Final = 0x01
FLAG_END_STREAM: Final = 0x02
_HEADER = struct.Struct(">BI")


def make_error(
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: object = None,
    trailers: object = None,
) -> ScrawnError:
    """The typed error of an error answer: its code, its details (field, request id, amounts, the kept
    event), and the wait it asked for."""
    error = typed_error(code, message, read_details(details), request_id_header(headers))
    error.retry_after = retry_after_from(headers, trailers)
    return error


# ------------------------------------------------------------------------------------------ Retry-After

_SECONDS = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,6})?")


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delay-seconds (``120``, a fraction tolerated) or an
    HTTP-date (``Wed, 21 Oct 2015 07:28:00 GMT``; a date in the past is 0). ``None`` when malformed."""
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110: HTTP-dates are GMT
        return None
    wait = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, wait) if math.isfinite(wait) else None


def _first(values: object) -> str | None:
    if isinstance(values, str):
        return values
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


def retry_after_from(headers: Mapping[str, str] | None, trailers: object = None) -> float | None:
    """The wait a server asked for: the ``retry-after`` header (``retry-after-ms`` too, as some proxies and
    APIs send), else the same key in a Connect end-of-stream ``metadata`` (trailers: ``{"retry-after":
    ["5"]}``)."""
    sources: list[Mapping[str, object]] = []
    if headers is not None:
        sources.append(headers)
    if isinstance(trailers, Mapping):
        sources.append({str(k).lower(): v for k, v in trailers.items()})
    for source in sources:
        millis = _first(source.get("retry-after-ms"))
        if millis is not None and _SECONDS.fullmatch(millis.strip()):
            return float(millis.strip()) / 1000
        text = _first(source.get("retry-after"))
        if text is not None:
            seconds = parse_retry_after(text)
            if seconds is not None:
                return seconds
    return None


def envelope(payload: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def iter_envelopes(data: bytes) -> Iterator[tuple[int, bytes]]:
    i, size = 0, len(data)
    while i < size:
        if i + 5 > size:
            raise InternalError("Malformed Connect stream: truncated envelope header")
        flags, length = _HEADER.unpack_from(data, i)
        end = i + 5 + length
        if end > size:
            raise InternalError("Malformed Connect stream: truncated envelope")
        yield flags, data[i + 5 : end]
        i = end


def _error_from_body(status: int, headers: Mapping[str, str], body: bytes) -> ScrawnError:
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return make_error(
            parsed["code"], str(parsed.get("message") or parsed["code"]), headers, parsed.get("details")
        )
    code = CODES_BY_HTTP.get(status, "unknown")
    return make_error(code, f"HTTP {status} from the server without a Connect error body", headers)


def parse_unary(status: int, headers: Mapping[str, str], body: bytes, response_type: type[M]) -> M:
    """The response message of a unary call, or the typed error it carried."""
    if status != 200:
        raise _error_from_body(status, headers, body)
    content_type = headers.get("content-type", "")
    if not content_type.startswith(PROTO):
        raise InternalError(f"Unexpected response content-type {content_type[:60]!r} (expected {PROTO})")
    try:
        return response_type.FromString(body)
    except DecodeError:
        raise InternalError("Malformed response message from the server") from None


def parse_stream(status: int, headers: Mapping[str, str], body: bytes, response_type: type[M]) -> M:
    """The single response message of a client-streaming call, or the typed error of its end of stream."""
    if status != 200:
        raise _error_from_body(status, headers, body)
    message: M | None = None
    for flags, payload in iter_envelopes(body):
        if flags & FLAG_COMPRESSED:
            raise InternalError("The server sent a compressed message the SDK did not ask for")
        if flags & FLAG_END_STREAM:
            try:
                end: Any = json.loads(payload or b"{}")
            except ValueError:
                raise InternalError("Malformed end-of-stream message from the server") from None
            error = end.get("error") if isinstance(end, dict) else None
            if isinstance(error, dict):
                code = str(error.get("code") or "unknown")
                raise make_error(
                    code,
                    str(error.get("message") or code),
                    headers,
                    error.get("details"),
                    end.get("metadata"),
                )
            break
        try:
            message = response_type.FromString(payload)
        except DecodeError:
            raise InternalError("Malformed response message from the server") from None
    if message is None:
        raise InternalError("The server ended the stream without a response message")
    return message


def _transport_error(exc: httpx.HTTPError, url: str) -> ScrawnError:
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(f"Timed out talking to {url}: {type(exc).__name__}")
    detail = str(exc) or type(exc).__name__
    return ConnectionFailedError(f"Could not reach {url}: {detail}")


def _timeout_headers(headers: dict[str, str], timeout: float | None) -> dict[str, str]:
    if timeout is not None:
        headers["connect-timeout-ms"] = str(max(1, int(timeout * 1000)))
    return headers


@overload
def check_http_client(
    value: object, kind: type[httpx.Client], field: str = "http_client"
) -> httpx.Client | None: ...
@overload
def check_http_client(
    value: object, kind: type[httpx.AsyncClient], field: str = "http_client"
) -> httpx.AsyncClient | None: ...
def check_http_client(
    value: object, kind: type[httpx.Client] | type[httpx.AsyncClient], field: str = "http_client"
) -> httpx.Client | httpx.AsyncClient | None:
    """A caller's own httpx client (``None``: the SDK makes one), of the flavour the client needs."""
    if value is None:
        return None
    if not isinstance(value, kind):
        other = "scrawn.AsyncScrawn" if kind is httpx.Client else "scrawn.Scrawn"
        hint = (
            f" (an httpx.{type(value).__name__} is for {other})"
            if isinstance(value, httpx.Client | httpx.AsyncClient)
            else ""
        )
        raise ValidationError(
            field,
            f"must be an httpx.{kind.__name__}, not {type(value).__name__}{hint}",
            context="Invalid client option",
        )
    if value.is_closed:
        raise ValidationError(field, "is closed", context="Invalid client option")
    return value


class _HttpTransport(Generic[H]):
    """What both transports share: the server's base URL and one httpx client of the transport's kind
    (``_kind``), made here, or the caller's (``http=``), used as it is (its proxy, transport, TLS settings)
    and never closed here."""

    _kind: type[H]

    def __init__(self, base_url: str, *, http: H | None = None) -> None:
        self.base_url = base_url
        self._owned = http is None
        self._http: H = http if http is not None else self._kind(follow_redirects=False)

    @classmethod
    def check_client(cls, value: object, field: str = "http_client") -> H | None:
        """A caller's httpx client for this transport (``None``: the transport makes its own)."""
        return check_http_client(value, cls._kind, field)


class Transport(_HttpTransport[httpx.Client]):
    """Blocking Connect calls on one ``httpx.Client`` (a connection pool; thread-safe)."""

    _kind = httpx.Client

    def unary(
        self,
        path: str,
        request: Message,
        response_type: type[M],
        headers: dict[str, str],
        timeout_s: float | None,
    ) -> M:
        send = _timeout_headers({**headers, "content-type": PROTO}, timeout_s)
        try:
            res = self._http.post(
                self.base_url + path, content=request.SerializeToString(), headers=send, timeout=timeout_s
            )
        except httpx.HTTPError as e:
            raise _transport_error(e, self.base_url + path) from None
        return parse_unary(res.status_code, res.headers, res.content, response_type)

    def client_stream(
        self,
        path: str,
        requests: Iterable[Message],
        response_type: type[M],
        headers: dict[str, str],
        timeout_s: float | None,
    ) -> M:
        send = _timeout_headers({**headers, "content-type": CONNECT_PROTO}, timeout_s)
        content: bytes | Iterator[bytes]
        if isinstance(requests, list | tuple):
            content = b"".join(envelope(r.SerializeToString()) for r in requests)
        else:  # streamed as produced (chunked), e.g. a long-lived LLM stream
            content = (envelope(r.SerializeToString()) for r in requests)
        try:
            res = self._http.post(self.base_url + path, content=content, headers=send, timeout=timeout_s)
        except httpx.HTTPError as e:
            raise _transport_error(e, self.base_url + path) from None
        return parse_stream(res.status_code, res.headers, res.content, response_type)

    def close(self) -> None:
        if self._owned:
            self._http.close()


class AsyncTransport(_HttpTransport[httpx.AsyncClient]):
    """Connect calls on one ``httpx.AsyncClient``."""

    _kind = httpx.AsyncClient

    @staticmethod
    def check_worker_client(value: object, field: str = "sync_http_client") -> httpx.Client | None:
        """A caller's ``httpx.Client`` for the async client's background thread, which cannot use an
        ``AsyncClient`` (``None``: the thread makes its own)."""
        return check_http_client(value, httpx.Client, field)

    async def unary(
        self,
        path: str,
        request: Message,
        response_type: type[M],
        headers: dict[str, str],
        timeout_s: float | None,
    ) -> M:
        send = _timeout_headers({**headers, "content-type": PROTO}, timeout_s)
        try:
            res = await self._http.post(
                self.base_url + path, content=request.SerializeToString(), headers=send, timeout=timeout_s
            )
        except httpx.HTTPError as e:
            raise _transport_error(e, self.base_url + path) from None
        return parse_unary(res.status_code, res.headers, res.content, response_type)

    async def client_stream(
        self,
        path: str,
        requests: Iterable[Message] | AsyncIterable[Message],
        response_type: type[M],
        headers: dict[str, str],
        timeout_s: float | None,
    ) -> M:
        """Send ``requests`` as one client stream. An async iterable is streamed as it is produced
        (chunked), so a long-lived source such as an LLM stream is billed without buffering it."""
        send = _timeout_headers({**headers, "content-type": CONNECT_PROTO}, timeout_s)
        content: bytes | AsyncIterable[bytes]
        if isinstance(requests, AsyncIterable):
            content = _aenvelopes(requests)
        else:
            content = b"".join(envelope(r.SerializeToString()) for r in requests)
        try:
            res = await self._http.post(
                self.base_url + path, content=content, headers=send, timeout=timeout_s
            )
        except httpx.HTTPError as e:
            raise _transport_error(e, self.base_url + path) from None
        return parse_stream(res.status_code, res.headers, res.content, response_type)

    async def close(self) -> None:
        if self._owned:
            await self._http.aclose()


async def _aenvelopes(requests: AsyncIterable[Message]) -> AsyncIterable[bytes]:
    async for r in requests:
        yield envelope(r.SerializeToString())
