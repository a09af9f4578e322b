"""A client's options: :class:`ClientConfig` (validated once, naming the option), the headers every call
sends, and the waits of ``flush()``/``close()``."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from scrawn._retry import ErrorHook
from scrawn._version import __version__
from scrawn.errors import ValidationError

if TYPE_CHECKING:
    import httpx

VERSION: Final = __version__
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8069"
ENV_API_KEY: Final = "SCRAWN_API_KEY"
ENV_BASE_URL: Final = "SCRAWN_BASE_URL"
API_KEY_PATTERN: Final = re.compile(r"scrn_(dash|live|test)_[A-Za-z0-9]{32}")
CONFIG_CONTEXT: Final = "Invalid client option"


# --------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class ClientConfig:
    """Validated client options. ``api_key`` is kept out of ``repr``."""

    api_key: str = field(repr=False)
    base_url: str
    timeout: float | None
    max_retries: int
    on_error: ErrorHook | None
    backoff_base: float
    backoff_max: float
    spool_path: str | None
    spool_fsync: bool
    buffer_size: int
    batch_size: int
    flush_interval: float
    exit_timeout: float
    # The caller's httpx.Client for the background delivery thread (track(), middleware, track_ai):
    # Scrawn's http_client, AsyncScrawn's sync_http_client; None: the thread makes its own.
    worker_http: httpx.Client | None = field(default=None, repr=False, compare=False)

    @property
    def key_role(self) -> str:
        return self.api_key.split("_")[1]

    def masked_key(self) -> str:
        return f"scrn_{self.key_role}_{'*' * 8}"


def resolve_config(arguments: Mapping[str, object], worker_http: httpx.Client | None = None) -> ClientConfig:
    """A client's options validated, each read by name from its constructor's arguments (``locals()``);
    ``worker_http`` is the caller's client for the background delivery thread."""
    a = arguments
    key = check_api_key(a["api_key"] if a["api_key"] is not None else os.environ.get(ENV_API_KEY))
    url = check_base_url(
        a["base_url"] if a["base_url"] is not None else os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    )
    timeout = None if a["timeout"] is None else _positive("timeout", a["timeout"])
    max_retries = a["max_retries"]
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 100:
        raise ValidationError("max_retries", "must be an int from 0 to 100", context=CONFIG_CONTEXT)
    on_error = check_hook(a["on_error"])
    path: str | None = None
    if (spool_path := a["spool_path"]) is not None:
        if not isinstance(spool_path, str | os.PathLike):
            raise ValidationError("spool_path", "must be a path (str or os.PathLike)", context=CONFIG_CONTEXT)
        path = os.fspath(spool_path)
        if not path or "\x00" in path:
            raise ValidationError("spool_path", "must be a non-empty path", context=CONFIG_CONTEXT)
    buffer_size, batch_size = _count("buffer_size", a["buffer_size"]), _count("batch_size", a["batch_size"])
    if batch_size > 10_000:
        raise ValidationError("batch_size", "must be at most 10000", context=CONFIG_CONTEXT)
    return ClientConfig(
        api_key=key,
        base_url=url,
        timeout=timeout,
        max_retries=max_retries,
        on_error=on_error,
        backoff_base=_positive("backoff_base", a["backoff_base"]),
        backoff_max=_positive("backoff_max", a["backoff_max"]),
        spool_path=path,
        spool_fsync=bool(a["spool_fsync"]),
        buffer_size=buffer_size,
        batch_size=batch_size,
        flush_interval=_positive("flush_interval", a["flush_interval"]),
        exit_timeout=_positive("exit_timeout", a["exit_timeout"]),
        worker_http=worker_http,
    )


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000_000:
        raise ValidationError(name, "must be a positive int", context=CONFIG_CONTEXT)
    return value


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(name, "must be a positive finite number of seconds", context=CONFIG_CONTEXT)
    return float(value)


def check_hook(on_error: object) -> ErrorHook | None:
    if on_error is not None and not callable(on_error):
        raise ValidationError(
            "on_error", "must be callable as on_error(error, context)", context=CONFIG_CONTEXT
        )
    return on_error


def check_wait(timeout: object) -> float | None:
    """A ``flush()``/``close()`` timeout: ``None`` or a number of seconds ≥ 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValidationError(
            "timeout", "must be None or a number of seconds >= 0", context="Invalid argument"
        )
    return float(timeout)


def deadline(timeout: float | None) -> float | None:
    """The monotonic time a ``flush()``/``close()`` budget of ``timeout`` seconds ends (``None``: none)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline_: float | None) -> float | None:
    """Seconds left of a budget from :func:`deadline` (``None``: the callee's own default)."""
    return None if deadline_ is None else max(0.0, deadline_ - time.monotonic())


def check_api_key(key: object) -> str:
    """The key's shape, checked locally as the TS SDK does. Never echoes the key."""
    if key is None or key == "":
        raise ValidationError(
            "api_key", f"is required: pass api_key= or set {ENV_API_KEY}", context=CONFIG_CONTEXT
        )
    if not isinstance(key, str):
        raise ValidationError(
            "api_key", f"must be a string, not {type(key).__name__}", context=CONFIG_CONTEXT
        )
    if not API_KEY_PATTERN.fullmatch(key):
        raise ValidationError(
            "api_key",
            f"must look like scrn_<dash|live|test>_ followed by 32 letters or digits "
            f"(42 characters; the value given has {len(key)} and is not shown)",
            context=CONFIG_CONTEXT,
        )
    return key


def check_base_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(
            "base_url", "must be a non-empty URL such as http://127.0.0.1:8069", context=CONFIG_CONTEXT
        )
    url = url.strip().rstrip("/")
    match = re.fullmatch(r"(https?)://([^/?#\s@]+)(/[^?#\s]*)?", url)
    if match is None:
        raise ValidationError(
            "base_url",
            "must be an http:// or https:// URL without query, fragment or credentials",
            context=CONFIG_CONTEXT,
        )
    return url


def headers(config: ClientConfig) -> dict[str, str]:
    return {
        "authorization": f"Bearer {config.api_key}",
        "connect-protocol-version": "1",
        "user-agent": f"scrawn-python/{VERSION}",
    }
