"""The price catalog's entries as the domain reads them (a live version each)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

CLI = "cli"  # who made a catalog change from the command line (``changed_by``; otherwise an API key id)


# Name rules of the catalog: tags and expressions in capitals, event types as the wire contract allows.
NAME_PATTERN = re.compile(r"[A-Z][A-Z0-9_]*")
EVENT_TYPE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_NAME = 128


@dataclass(frozen=True)
class Tag:
    key: str
    price: Decimal
    version: int
    created_at: int
    changed_by: str | None = None  # the API key id, or "cli"; None for versions written before it was kept


@dataclass(frozen=True)
class NamedExpression:
    """A named expression, or an event price (``name`` is then the event type)."""

    name: str
    text: str
    version: int
    created_at: int
    changed_by: str | None = None  # as Tag.changed_by
