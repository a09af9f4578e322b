"""What the JSON API's route modules share (``api.py`` mounts them: tags, expressions and prices there, the
other domains' in their ``api.py``/``http.py``): the handler and wrapper types, and the request body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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


def _no_constant(name: str) -> None:
    raise ValueError(name)
