"""The ``scrawn`` root lists every command without importing it (``scrawn --help`` stays fast), and what
it lists is each command's own first help line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import typer.main

from scrawn.server.cli import COMMANDS, app, load_command


def test_listed_help_is_each_commands_own() -> None:
    for name, (_, _, line) in COMMANDS.items():
        command = load_command(name)
        assert command.get_short_help_str(limit=500) == line, name
    root = typer.main.get_command(app)
    assert list(root.commands)[: len(COMMANDS)] == list(COMMANDS)  # type: ignore[attr-defined]


def test_help_and_version_import_none_of_the_server() -> None:
    probe = (
        "import sys\n"
        "from scrawn.server.entry import main\n"
        "for args in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('sqlalchemy', 'httpx', 'grpc', 'scrawn._sync', 'scrawn.server.serve')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout
    assert "doctor" in done.stdout and "scrawn 0" in done.stdout


# Commands that print no data of their own: each one's reason.
NOT_DATA = {
    "serve": "runs the server; its output is logs",
    "demo": "a walkthrough printed for a person",
    "events export": "writes CSV (its own machine-readable format)",
}


def leaves(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    children = getattr(command, "commands", None)
    if children:
        for name, child in children.items():
            yield from leaves(child, (*path, name))
    else:
        yield " ".join(path), command


def test_every_command_that_prints_data_takes_json() -> None:
    found = {path: command for name in COMMANDS for path, command in leaves(load_command(name), (name,))}
    assert set(NOT_DATA) <= set(found)
    without = {path for path, c in found.items() if not any("--json" in p.opts for p in c.params)}
    assert without == set(NOT_DATA)
