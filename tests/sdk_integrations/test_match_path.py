"""``scrawn.match_path(path, pattern)``: the TS SDK's ``matchPath(path, pattern)`` — same argument order,
same language."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scrawn
from scrawn.errors import ValidationError
from scrawn.middleware import match_path


def test_the_ts_sdk_examples_with_its_argument_order() -> None:
    """The seed's own examples of ``matchPath(path, pattern)``, written exactly as they are there."""
    assert scrawn.match_path("/api/users", "/api/*") is True
    assert scrawn.match_path("/api/users/123", "/api/*") is False
    assert scrawn.match_path("/api/users/123", "/api/**") is True
    assert scrawn.match_path("/index.php", "**.php") is True
    assert match_path(path="/api/users", pattern="/api/*") is True


# (pattern, path, expected)
CASES = [
    # exact
    ("/api/users", "/api/users", True),
    ("/api/users", "/api/users/", False),
    ("/api/users", "/api/Users", False),
    ("/", "/", True),
    # * : one or more characters of one segment
    ("/api/*", "/api/users", True),
    ("/api/*", "/api/users/123", False),
    ("/api/*", "/api/", False),
    ("/api/*", "/api", False),
    ("/api/*/profile", "/api/u1/profile", True),
    ("/api/*/profile", "/api/u1/u2/profile", False),
    ("/files/*.json", "/files/a.json", True),
    ("/files/*.json", "/files/a/b.json", False),
    ("/files/*.json", "/files/.json", False),
    ("/v*/items", "/v2/items", True),
    # ** : anything, slashes included, also nothing
    ("/api/**", "/api/users", True),
    ("/api/**", "/api/users/123/orders", True),
    ("/api/**", "/api/", True),
    ("/api/**", "/api", False),
    ("/api/**/data", "/api/v1/users/data", True),
    ("/api/**/data", "/api/x/data", True),
    ("/api/**/data", "/api/data", False),
    ("**.php", "/index.php", True),
    ("**.php", "/a/b/c.php", True),
    ("**.php", "/index.phps", False),
    ("/**", "/anything/at/all", True),
    ("**", "", True),
    # regex metacharacters are literal
    ("/a.b", "/aXb", False),
    ("/a+b/*", "/a+b/c", True),
    ("/(x)|[y]/**", "/(x)|[y]/z", True),
    ("/price/$1?", "/price/$1?", True),
    ("/price/$*", "/price/$12", True),
    ("/a^b/*", "/a^b/c", True),
    ("/back\\slash/*", "/back\\slash/x", True),
    # mixed
    ("/api/*/items/**", "/api/v1/items/1/2", True),
    ("/api/*/items/**", "/api/v1/x/items/1", False),
    ("/api/*/internal/**", "/api/v1/internal/", True),
    # query strings are not part of the path
    ("/api/*", "/api/users?x=1", True),  # '?' is an ordinary character of the segment here
]


@pytest.mark.parametrize(("pattern", "path", "expected"), CASES)
def test_match_path_table(pattern: str, path: str, expected: bool) -> None:
    assert match_path(path, pattern) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "field"),
    [
        (None, "/x", "pattern"),
        (3, "/x", "pattern"),
        ("", "/x", "pattern"),
        ("/a\x00", "/x", "pattern"),
        ("/" + "a" * 2000, "/x", "pattern"),
        ("/x", None, "path"),
        ("/x", b"/x", "path"),
    ],
)
def test_match_path_refuses_hostile_arguments(pattern: object, path: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        match_path(path, pattern)  # type: ignore[arg-type]
    assert info.value.field == field


def _ts_regex(pattern: str) -> re.Pattern[str]:
    """The TS SDK's pathMatcher, transcribed: escape, ``**`` → ``.*``, ``*`` → ``[^/]+``."""
    text = re.sub(r"[.+?^${}()|[\]\\]", lambda m: "\\" + m.group(0), pattern)
    text = text.replace("**", "\x00").replace("*", "[^/]+").replace("\x00", ".*")
    return re.compile(f"^{text}$", re.DOTALL)


@settings(max_examples=1500, deadline=None)
@given(
    pattern=st.text(alphabet="ab/*.$", min_size=1, max_size=12),
    path=st.text(alphabet="ab/.$", max_size=14),
)
def test_same_language_as_the_ts_regex(pattern: str, path: str) -> None:
    expected = path == pattern or ("*" in pattern and _ts_regex(pattern).search(path) is not None)
    assert match_path(path, pattern) is expected


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("/**/a/**/b/**/c/**/d", "/" + "/a/b/c" * 3000),  # the TS regex takes minutes on a few hundred
        ("/*x*x*x*x*y", "/" + "x" * 20_000),
        ("**a**a**a**a**b", "a" * 20_000),
    ],
)
def test_crafted_paths_are_matched_in_linear_time(pattern: str, path: str) -> None:
    start = time.perf_counter()
    assert match_path(path, pattern) is False
    # A bound on complexity, not a speed test: backtracking takes minutes here, a linear match milliseconds.
    assert time.perf_counter() - start < 30
