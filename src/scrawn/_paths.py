"""Path patterns of the middleware's ``whitelist``/``blacklist``, as the TS SDK's ``matchPath``:
:func:`match_path`, and the validation of the patterns an application gives."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from scrawn.errors import ValidationError

MAX_PATTERN: Final = 1024
_CONTEXT: Final = "Invalid middleware option"


# ---------------------------------------------------------------------------------------- patterns


class _Glob:
    """A compiled pattern, matched in time linear in the path (a bit-parallel NFA).

    The TS SDK compiles patterns to a regex (``**`` → ``.*``, ``*`` → ``[^/]+``), which backtracks
    catastrophically: ``/**/a/**/b/**/c/**/d`` against a crafted path of a few hundred segments takes
    minutes. Request paths come from clients, so this simulates the same language without
    backtracking: one bit per pattern position, a few integer operations per path character."""

    __slots__ = ("_accept", "_eps", "_lit", "_loop_any", "_loop_seg", "_one_seg", "_start")

    def __init__(self, pattern: str) -> None:
        lit: dict[str, int] = {}
        one_seg = loop_seg = loop_any = 0
        k = 0
        i = 0
        while i < len(pattern):
            if pattern.startswith("**", i):  # any characters, "/" included, possibly none
                loop_any |= 1 << k
                k += 1
                i += 2
            elif pattern[i] == "*":  # one or more characters other than "/": one, then a loop
                one_seg |= 1 << k
                loop_seg |= 1 << (k + 1)
                k += 2
                i += 1
            else:
                lit[pattern[i]] = lit.get(pattern[i], 0) | 1 << k
                k += 1
                i += 1
        self._lit = lit
        self._one_seg = one_seg
        self._loop_seg = loop_seg
        self._loop_any = loop_any
        self._eps = loop_seg | loop_any  # loop positions may be skipped
        self._accept = 1 << k
        self._start = self._closure(1)

    def _closure(self, states: int) -> int:
        while True:
            more = states | ((states & self._eps) << 1)
            if more == states:
                return states
            states = more

    def fullmatch(self, path: str) -> bool:
        states = self._start
        lit, one_seg, loop_seg, loop_any = self._lit, self._one_seg, self._loop_seg, self._loop_any
        for ch in path:
            nxt = ((states & lit.get(ch, 0)) << 1) | (states & loop_any)
            if ch != "/":
                nxt |= ((states & one_seg) << 1) | (states & loop_seg)
            if not nxt:
                return False
            states = self._closure(nxt)
        return bool(states & self._accept)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> _Glob:
    return _Glob(pattern)


def _check_pattern(name: str, pattern: object) -> str:
    if not isinstance(pattern, str):
        raise ValidationError(name, f"must be a string, not {type(pattern).__name__}", context=_CONTEXT)
    if not pattern or len(pattern) > MAX_PATTERN or "\x00" in pattern:
        raise ValidationError(name, f"must be 1 to {MAX_PATTERN} characters, without NUL", context=_CONTEXT)
    return pattern


def match_path(path: str, pattern: str) -> bool:
    """Whether request ``path`` matches ``pattern``: the TS SDK's ``matchPath(path, pattern)``, same
    argument order, same language (``match_path("/api/users", "/api/*")`` is ``True``):

    - a pattern without ``*`` matches only the identical path (``/api/users``);
    - ``*`` matches one or more characters within one segment: ``/api/*`` matches ``/api/users`` but not
      ``/api/users/1``, ``/api/`` or ``/api``;
    - ``**`` matches any characters, ``/`` included (also none): ``/api/**`` matches ``/api/`` and
      ``/api/users/1`` but not ``/api``; ``**.php`` matches ``/index.php`` and ``/a/b.php``;
      ``/api/**/data`` matches ``/api/v1/x/data`` but not ``/api/data``.

    Matching is on the path only (no query string), case-sensitive, without decoding or normalising."""
    if not isinstance(path, str):
        raise ValidationError("path", f"must be a string, not {type(path).__name__}", context=_CONTEXT)
    _check_pattern("pattern", pattern)
    if path == pattern:
        return True
    if "*" not in pattern:
        return False
    return _compile(pattern).fullmatch(path)


def check_patterns(name: str, patterns: object) -> tuple[str, ...]:
    if patterns is None:
        return ()
    if isinstance(patterns, str | bytes) or not isinstance(patterns, Iterable):
        raise ValidationError(
            name, f"must be a list of path patterns, not {type(patterns).__name__}", context=_CONTEXT
        )
    checked = tuple(_check_pattern(f"{name}[{i}]", p) for i, p in enumerate(patterns))
    for pattern in checked:
        if "*" in pattern:
            _compile(pattern)
    return checked
