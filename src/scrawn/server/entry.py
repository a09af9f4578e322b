"""The ``scrawn`` entry point. Only the standard library is imported before the command line is read, so
that a missing server extra is a sentence, not a traceback. An operator's mistake (``OperatorError``) prints
as one or two lines; anything unexpected prints one line too, and its traceback only with ``--debug``
(accepted anywhere on the command line) or ``SCRAWN_DEBUG=1``. Either exits 1."""

from __future__ import annotations

import os
import sys

EXTRA_HINT = "install the server: pip install 'scrawn[server]'"


class OperatorError(Exception):
    """A mistake in configuration or environment: printed as ``error: <message>`` and ``  <hint>``."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _error(message: str, hint: str = "") -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"  {hint}", file=sys.stderr)


def split_debug(args: list[str]) -> tuple[bool, list[str]]:
    """``--debug`` wherever it is (before a ``--``), moved to the front where the root option reads it."""
    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end] or os.environ.get("SCRAWN_DEBUG", "") not in ("", "0")
    rest = [a for i, a in enumerate(args) if not (i < end and a == "--debug")]
    return debug, (["--debug", *rest] if debug else rest)


def main(argv: list[str] | None = None) -> None:
    debug, args = split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        from scrawn.server.cli import app

        app(args=args, prog_name="scrawn")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        _report(e)
        sys.exit(1)


def _report(e: Exception) -> None:
    if isinstance(e, OperatorError):
        _error(e.message, e.hint)
    elif isinstance(e, ModuleNotFoundError) and e.name is not None and not e.name.startswith("scrawn"):
        _error(f"this command needs the Python package {e.name.split('.')[0]!r}, not installed", EXTRA_HINT)
    else:
        _error(f"{type(e).__name__}: {e}", "this is unexpected: run again with --debug to see the traceback")
