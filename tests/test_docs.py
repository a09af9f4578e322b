"""The documentation a user reads (README, CONTRIBUTING, docs/, benchmarks/README) refers to nothing they do
not have: every relative link and its anchor resolves inside the repository, every repository path it
names exists, and it cites no design notes or tracker numbers that live elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``#`` there is a shell comment, not a heading)."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in re.findall(r"^#+ (.*)$", prose(page), flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        inside = dest.exists() and ROOT in (dest, *dest.parents)
        if not inside or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "DESIGN.md" not in text
    # Tracker references: "issue 12", "#12", "owner/repo#12" (a public upstream one is a full link).
    assert not re.findall(r"\bissues? #?\d+|(?<![\w&/])#\d+\b|\w/\w+#\d+", text, flags=re.I)
    named = {p for p in re.findall(r"`((?:src|scripts|tests|benchmarks|proto|docs|\.ci)/[^`\s]+)`", text)}
    placeholders = re.compile(r"[<>*…]|NNNN|node_modules")  # patterns and generated directories
    missing = [p for p in named if not placeholders.search(p) and not (ROOT / p).exists()]
    assert not missing, missing
