"""How ``scrawn`` commands print what they found: records (plain dicts with stable field names) shown as a
Rich table, or with ``--json`` as JSON. Tables never cut an id: id columns keep their full width, the other
columns fold, narrow terminals leave out the extra columns (``--wide`` shows every one), and a table that
still cannot fit is printed wider than the terminal rather than cut. JSON carries amounts as exact decimal
strings (never floats), times as ISO 8601 UTC, and ids in full."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from scrawn.money import format_amount
from scrawn.server.cli_options import Cli
from scrawn.server.cli_support import console
from scrawn.server.clock import iso

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Col:
    """One column of a table: the record's field ``key`` under ``header``."""

    key: str
    header: str = ""
    id: bool = False  # never cut, never wrapped
    extra: bool = False  # left out when the terminal is too narrow for it (shown with --wide)
    right: bool = False
    fmt: Callable[[Any], str] | None = None  # how the cell shows the value (default: ``text``)

    def cell(self, record: Record) -> str:
        value = record.get(self.key)
        return self.fmt(value) if self.fmt is not None and value is not None else text(value)


def when(ms: int | None) -> str | None:
    """Unix ms as ISO 8601 UTC, None for None (a JSON null, shown as "-")."""
    return iso(ms) or None


def amount(value: Decimal | None) -> str | None:
    return None if value is None else format_amount(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format_amount(value)
    if isinstance(value, float):  # amounts are Decimal everywhere; a float here is a bug, not a number
        raise TypeError(f"float in CLI output: {value!r}")
    raise TypeError(f"not JSON: {value!r}")


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=_json_value)


def fields(obj: Any, *names: str, **more: Any) -> dict[str, Any]:
    """A record of ``obj``'s attributes ``names`` (a name ending in ``_at`` holds Unix ms, shown as ISO 8601),
    then ``more``."""
    found = {name: getattr(obj, name) for name in names}
    return {name: when(v) if name.endswith("_at") else v for name, v in found.items()} | more


def snake_case(data: Any) -> Any:
    """A JSON API object (camelCase names) under the names every command prints: snake_case."""
    if isinstance(data, Mapping):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake_case(v) for k, v in data.items()}
    if isinstance(data, list):
        return [snake_case(v) for v in data]
    return data


def json_line(data: Any) -> str:
    """``data`` as one line of JSON Lines (for output that streams)."""
    return json.dumps(data, ensure_ascii=False, default=_json_value) + "\n"


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format_amount(value)
    return str(value)


def _width(rows: Sequence[Record], col: Col) -> int:
    return max([len(col.header or col.key), *(len(col.cell(r)) for r in rows)])


def _needed(rows: Sequence[Record], cols: Sequence[Col]) -> int:
    """The narrowest the table can be with its ids whole: ids at full width, other columns at 6."""
    return sum((_width(rows, c) if c.id else min(6, _width(rows, c))) + 3 for c in cols) + 1


def _natural(rows: Sequence[Record], cols: Sequence[Col]) -> int:
    return sum(_width(rows, c) + 3 for c in cols) + 1


def table(
    cli: Cli,
    rows: Sequence[Record],
    *,
    ids: Collection[str] = ("id",),
    extra: Collection[str] = (),
    hide: Collection[str] = (),
    fmt: Mapping[str, Callable[[Any], str]] | None = None,
    title: str | None = None,
) -> None:
    """The records as a table, a column per field (or with ``--json`` as a JSON array of them). ``ids`` are
    never cut; ``extra`` columns are left out when the terminal is too narrow for every column (``--wide``
    keeps them); ``hide`` fields are only in the JSON; ``fmt`` shows a field's value its own way."""
    if cli.json:
        print_json(list(rows))
        return
    if not rows:
        console.print("(none)" if title is None else f"{title}: (none)", highlight=False)
        return
    numbers = (int, Decimal)
    cols = [
        Col(
            key,
            key.replace("_", " "),
            id=key in ids,
            extra=key in extra,
            right=all(
                isinstance(r[key], numbers) and not isinstance(r[key], bool)
                for r in rows
                if r[key] is not None
            ),
            fmt=(fmt or {}).get(key),
        )
        for key in rows[0]
        if key not in hide
    ]
    if not cli.wide and _natural(rows, cols) > console.width:
        cols = [c for c in cols if not c.extra]
    out = table_of(rows, cols, title=title)
    width = _natural(rows, cols) if cli.wide else _needed(rows, cols)
    if width > console.width:  # wider than the terminal rather than an id cut short
        Console(width=width, highlight=False, soft_wrap=False).print(out)
    else:
        console.print(out)


def table_of(
    rows: Iterable[Record], cols: Sequence[Col], *, title: str | None = None, header: bool = True
) -> Table:
    out = Table(
        title=title,
        show_header=header,
        box=box.SIMPLE_HEAD if header else None,
        pad_edge=False,
        show_edge=False,
    )
    for c in cols:
        out.add_column(
            c.header or c.key,
            no_wrap=c.id,
            overflow="fold",
            justify="right" if c.right else "left",
        )
    for r in rows:
        out.add_row(*(c.cell(r) for c in cols))
    return out


def say(cli: Cli, message: str, data: Any) -> None:
    """One result: ``message`` as text, or ``data`` as JSON."""
    if cli.json:
        print_json(data)
    else:
        console.print(message, highlight=False, soft_wrap=True)
