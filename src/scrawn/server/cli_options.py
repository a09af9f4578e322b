"""The options every ``scrawn`` command shares, declared once: ``@options(...)`` adds ``--database-url``,
``--data-dir`` and, as asked, ``--project``, ``--mode``, ``--json`` and ``--wide`` to a command, and hands it
one ``Cli`` holding them. Option values are checked while the command line is parsed, so a bad one is a
usage error (exit 2) naming the option."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from scrawn.server.cli_support import DataOpt, DbOpt, in_project, load_settings, run_db
from scrawn.server.config import Settings
from scrawn.server.db.engine import Database

T = TypeVar("T")
MODES = ("live", "test")


def choice(*values: str) -> Callable[[str], str]:
    """A parser accepting exactly ``values`` (a usage error naming the option otherwise)."""
    allowed = " or ".join(", ".join(values).rsplit(", ", 1))

    def parse(text: str) -> str:
        if text not in values:
            raise typer.BadParameter(f"must be {allowed} (not {text!r})")
        return text

    return parse


_DURATION = re.compile(r"([0-9]{1,12})([smhdw]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration(low: int, high: int) -> Callable[[str], int]:
    """Seconds, or a number with s, m, h, d or w (``90m``, ``30d``), from ``low`` to ``high`` seconds."""

    def parse(text: str) -> int:
        found = _DURATION.fullmatch(text.strip().lower())
        if found is None:
            raise typer.BadParameter(f"must be seconds or a duration such as 90m, 12h or 30d (not {text!r})")
        seconds = int(found[1]) * _SECONDS[found[2]]
        if not low <= seconds <= high:
            raise typer.BadParameter(f"must be {low} to {high} seconds (got {seconds})")
        return seconds

    return parse


def id_argument(what: str) -> Any:
    return typer.Argument(help=f"The {what}'s id or a unique prefix of it", show_default=False)


def mode_option(help_: str = "live or test") -> Any:
    return typer.Option("--mode", help=help_, parser=choice(*MODES), metavar="live|test")


@dataclass
class Cli:
    """What a command was given besides its own arguments: where the database is, which project and mode,
    and how to print (table, ``--json``, ``--wide``)."""

    database_url: str | None = None
    data_dir: Path | None = None
    project: str | None = None
    mode: str = "live"
    json: bool = False
    wide: bool = False
    more: dict[str, Any] = field(default_factory=dict)  # a command group's own shared options

    @cached_property
    def settings(self) -> Settings:
        return load_settings(database_url=self.database_url, data_dir=self.data_dir)

    def run(self, work: Callable[[Database], Awaitable[T]], *, create: bool = False) -> T:
        """``work`` on the database (a SQLite file is created only with ``create``: ``scrawn init``)."""
        return run_db(self.settings, work, create=create)

    def read(self, work: Callable[[AsyncConnection, str], Awaitable[T]]) -> T:
        """``work(conn, project_id)`` in a read transaction on the project (``--project`` or the only one)."""
        return in_project(self.settings, self.project, work)

    def write(self, work: Callable[[AsyncConnection, str], Awaitable[T]]) -> T:
        return in_project(self.settings, self.project, work, write=True)


_COMMON: dict[str, tuple[Any, Any]] = {"database_url": (DbOpt, None), "data_dir": (DataOpt, None)}
_PROJECT = (
    Annotated[
        str | None,
        typer.Option("--project", help="Project id or a unique prefix of it (default: the only project)"),
    ],
    None,
)
_MODE = (Annotated[str, mode_option()], "live")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text (every id in full)")]
_JSON = (JsonOpt, False)
_WIDE = (Annotated[bool, typer.Option("--wide", help="Every column, however wide the table gets")], False)


OptionSpecs = Mapping[str, tuple[Any, Any]]  # parameter name: (its Annotated type, its default)


def options(
    *,
    project: bool = True,
    mode: bool = False,
    json: bool = True,
    wide: bool = False,
    more: OptionSpecs | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give the decorated ``command(cli: Cli, ...)`` the shared options (after its own), and ``more``
    options a group of commands shares, handed over in ``cli.more``; Typer reads them all from the
    signature of the function returned."""
    added = dict(_COMMON)
    for name, wanted, spec in (
        ("project", project, _PROJECT),
        ("mode", mode, _MODE),
        ("json", json, _JSON),
        ("wide", wide, _WIDE),
    ):
        if wanted:
            added[name] = spec

    def wrap(func: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "cli"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in (added | dict(more or {})).items()
        ]

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name in added}
            func(Cli(**given, more={name: kwargs.pop(name) for name in more or {}}), **kwargs)

        parameters = own + shared
        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # Typer must read the new signature, not the wrapped one's
        return command

    return wrap
