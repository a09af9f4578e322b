"""The server's log lines (docs/configuration.md#logs): every stdlib logger goes through one structlog
formatter, readable on a terminal and one JSON object per line otherwise, each line carrying the id of the
request it was written for. Database-driver chatter stays off unless ``SCRAWN_LOG_SQL=1``."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

import structlog

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Loggers that speak for every statement, frame or connection: below WARNING only when asked.
_NOISY = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic", "hpack", "h2", "httpcore")


@dataclass
class RequestInfo:
    """What the access line and every other line of one request say about it. Mutable: authentication,
    deeper in the call, fills in who called."""

    id: str
    key_id: str | None = None
    project: str | None = None
    mode: str | None = None


current_request: ContextVar[RequestInfo | None] = ContextVar("scrawn_request", default=None)


def request_id() -> str:
    """The current request's id, or a fresh one outside a request."""
    info = current_request.get()
    return info.id if info is not None else uuid.uuid4().hex


def note_caller(project: str, key_id: str | None = None, mode: str | None = None) -> None:
    """Record who is calling on the current request's access line (a no-op outside a request)."""
    info = current_request.get()
    if info is not None:
        info.project = project
        info.key_id = key_id or info.key_id
        info.mode = mode or info.mode


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    info = current_request.get()
    if info is not None:
        event.setdefault("request_id", info.id)
    return event


def _drop_internals(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("_record", None)
    event.pop("_from_structlog", None)
    return event


def resolve_format(value: str | None) -> LogFormat:
    """``--log-format``/``SCRAWN_LOG_FORMAT``; unset: console on a terminal, JSON otherwise."""
    if not value:
        return "console" if sys.stderr.isatty() else "json"
    value = value.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"log format must be json or console, not {value!r}")
    return value


def configure(
    level: str = "info", log_format: LogFormat = "json", sql: bool = False, pid: bool = False
) -> None:
    """Route every logger to stderr through one formatter (replacing handlers set before). ``pid``: every
    line says which process wrote it (one of several workers, docs/configuration.md#workers)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    chain: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _add_request_id,
    ]
    if pid:
        chain.append(
            structlog.processors.CallsiteParameterAdder([structlog.processors.CallsiteParameter.PROCESS])
        )
    if log_format == "json":  # the traceback as text in "exception", as Python prints it
        chain.append(structlog.processors.format_exc_info)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[_drop_internals, renderer], foreign_pre_chain=chain)
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.NOTSET if sql else logging.WARNING)
    if sql:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # the statements themselves
