"""The server's one clock. Every expiry, TTL and timestamp the server makes reads ``now_ms()``.

``SCRAWN_CLOCK_FILE`` names a file holding Unix milliseconds: a frozen clock that tests (and demos) move
by rewriting the file, the same in every process that shares it. Never set it in production.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

_CLOCK_FILE = os.environ.get("SCRAWN_CLOCK_FILE") or None
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


def now_ms() -> int:
    if _CLOCK_FILE is not None:
        return int(Path(_CLOCK_FILE).read_text().strip())
    return time.time_ns() // 1_000_000


def iso(ms: int | None) -> str:
    """Unix ms as the server writes times everywhere: ``2025-01-31T12:00:00.000Z`` ("" for None)."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (the ``tzdata`` package supplies the data where the system has none);
    ValueError saying what is wrong with the name."""
    if len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise ValueError(f"must be an IANA time zone name such as Europe/Berlin, not {name[:64]!r}")
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from None
