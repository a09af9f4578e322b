"""The type aliases of the SDK's public signatures, for annotating your own code (the package ships
``py.typed``; ``mypy --strict`` checks code that uses it).

    from scrawn.types import JSONValue, Metadata

- :data:`JSONValue` — any JSON value; :data:`Metadata` — event metadata: a JSON object (a mapping with
  string keys) or its text.
- :data:`Number` — an amount of minor units (cents): ``int``, ``Decimal``, a decimal ``str`` or a
  ``float`` (read through its shortest ``repr``). :data:`DebitInput` — what a debit may be: a number,
  ``tag("NAME")`` or any pricing expression.
- :data:`Timestamp` — a time given to a query: an aware ``datetime`` or Unix milliseconds.
- :data:`ErrorHook` — ``on_error(error, context)``; it may be ``async def`` (its return value is awaited
  when it is awaitable, otherwise ignored).
- :class:`MiddlewareEvent` — what a middleware extractor returns for a billable request.
- :data:`UsageChunk` — one chunk of token usage for ``ai_token_stream_consumer``: a mapping
  (``{"input_tokens": 12, "output_tokens": 3}``) or a :class:`scrawn.ai.AiUsage`.
- :class:`ClientOptions` and :class:`StreamOptions` — the keyword arguments of :func:`scrawn.scrawn` and
  of ``client.ai_token_stream_consumer(chunks, **options)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Required, TypeAlias, TypedDict, TypeVar

from scrawn._retry import ErrorHook
from scrawn.pricing import ExpressionInput, Number

if TYPE_CHECKING:
    import httpx

    from scrawn._ai_events import AiUsage

T = TypeVar("T")

__all__ = [
    "ClientOptions",
    "DebitInput",
    "ErrorHook",
    "JSONObject",
    "JSONValue",
    "Metadata",
    "MiddlewareEvent",
    "Number",
    "StreamOptions",
    "Timestamp",
    "UsageChunk",
]

JSONValue: TypeAlias = str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
"""A JSON value: what ``json.loads`` returns and ``json.dumps`` writes."""

JSONObject: TypeAlias = Mapping[str, JSONValue]
"""A JSON object: a mapping with string keys."""

Metadata: TypeAlias = Mapping[str, JSONValue] | str
"""Event metadata: a JSON object, or its text (at most 16 KiB as JSON)."""

DebitInput: TypeAlias = ExpressionInput
"""A debit: minor units (``int``, ``Decimal``, decimal ``str``, ``float``), ``tag("NAME")`` or an
expression such as ``mul(tag("PER_PAGE"), 3)``."""

Timestamp: TypeAlias = datetime | int
"""A timezone-aware ``datetime`` or Unix milliseconds."""


class MiddlewareEvent(TypedDict, total=False):
    """What a middleware ``extractor(request)`` returns to bill a request (``None``: not billed)."""

    user_id: Required[str]
    debit: Required[DebitInput]
    metadata: Metadata


UsageChunk: TypeAlias = "Mapping[str, object] | AiUsage"
"""One chunk of token usage: ``{"input_tokens": 12, "output_tokens": 3, ...}`` or an ``AiUsage``."""


class ClientOptions(TypedDict, total=False):
    """The keyword options of :class:`scrawn.Scrawn` (and of the :func:`scrawn.scrawn` factory)."""

    timeout: float | None
    max_retries: int
    on_error: ErrorHook | None
    spool_path: str | os.PathLike[str] | None
    spool_fsync: bool
    buffer_size: int
    batch_size: int
    flush_interval: float
    exit_timeout: float
    backoff_base: float
    backoff_max: float
    http_client: httpx.Client | None


class StreamOptions(TypedDict, Generic[T], total=False):
    """The keyword options of ``client.ai_token_stream_consumer(chunks, **options)``: the defaults of
    every chunk and the buffer settings of :func:`scrawn.ai.ai_token_stream_consumer`."""

    user_id: str | None
    model: str | None
    provider: str | None
    input_debit: DebitInput | None
    output_debit: DebitInput | None
    input_cache_debit: DebitInput | None
    output_cache_debit: DebitInput | None
    metadata: Metadata | None
    extract: Callable[[T], UsageChunk | None] | None
    batch_size: int
    buffer_size: int
    flush_interval: float
    on_error: ErrorHook | None
