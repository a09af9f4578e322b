"""The SDK's version: the installed distribution's, else the one in ``pyproject.toml`` (a source checkout
on ``sys.path`` without an install)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

FALLBACK = "0.1.0"  # keep equal to [project].version in pyproject.toml (a test checks it)


def _installed() -> str:
    try:
        return version("scrawn")
    except PackageNotFoundError:
        return FALLBACK


__version__: str = _installed()
