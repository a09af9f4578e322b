"""What the JSON API's route modules share (``api.py`` mounts them: tags, expressions and prices there, the
other domains' in their ``api.py``/``http.py``): the handler and wrapper types, and the request body."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from scrawn.errors import ValidationError
from scrawn.server.keys.service import Caller

MAX_BODY = 64 * 1024

Endpoint = Callable[[Request, Caller], Awaitable[Response]]
# ``api.JsonApi._wrap``: (endpoint, the action a non-dash key is refused) → the mounted route's endpoint
Wrap = Callable[[Endpoint, str], Callable[[Request], Awaitable[Response]]]


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ValidationError("body", f"must be at most {MAX_BODY} bytes")
    try:
        # Prices must stay exact: JSON numbers are read as Decimal, never float.
        body = json.loads(raw, parse_float=str, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ValidationError("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    return body


def answer_json(row: object, keys: Iterable[str], /, **given: object) -> dict[str, Any]:
    """``row`` as a JSON answer: each of ``keys`` (camelCase, in order; a declared schema's ``properties``
    serve) from ``given`` where it is there (a time as text, an amount as a decimal string), else the row's
    snake_case attribute as it is."""
    return {key: given[key] if key in given else getattr(row, _snake(key)) for key in keys}


@cache
def _snake(key: str) -> str:
    return re.sub("([A-Z])", r"_\1", key).lower()


def _no_constant(name: str) -> None:
    raise ValueError(name)
