"""The documentation a user reads (README, CONTRIBUTING, docs/, benchmarks/README) refers to nothing they do
not have: every relative link and its anchor resolves inside the repository, every repository path it
names exists, and it cites no design notes or tracker numbers that live elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import make_server

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


def test_the_capacity_figures_cite_recorded_results() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    capacity = text.split("## Capacity", 1)[1].split("\n## ", 1)[0]
    cited = set(re.findall(r"`([\w.-]+\.md)`", capacity))
    assert cited and all((ROOT / "benchmarks" / "results" / name).is_file() for name in cited), cited


def test_the_alert_rules_name_metrics_and_labels_a_server_exports(tmp_path: Path) -> None:
    """docs/operations.md's Prometheus rules parse, and every series and label they select is one a real
    server's /metrics has (a renamed metric would leave an alert that never fires)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    rules = yaml.safe_load(
        text.split("## Alerts on `/metrics`", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    )
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    handle = make_server(f"sqlite:///{tmp_path / 'scrawn.db'}", tmp_path)
    handle.start()
    try:
        assert httpx.get(f"{handle.base_url}/api/v1/tags").status_code == 401  # a request to count and time
        scraped = httpx.get(f"{handle.base_url}/metrics").text
    finally:
        handle.stop()
    labels: dict[str, set[str]] = {}  # series name: the labels its samples carry
    for line in scraped.splitlines():
        if found := re.match(r"(scrawn_\w+)(?:\{(.*)\})? ", line):
            labels.setdefault(found[1], set()).update(re.findall(r"(\w+)=", found[2] or ""))
    for expr in exprs:
        for name, selector in re.findall(r"(scrawn_\w+)(?:\{([^}]*)\})?", expr):
            assert name in labels, (name, expr)
            assert set(re.findall(r"(\w+)\s*=~?", selector)) <= labels[name], (name, expr)
        for grouped in re.findall(r"by \(([^)]*)\)", expr):  # grouped by labels of the one series named
            [name] = set(re.findall(r"(scrawn_\w+)", expr))
            assert {g.strip() for g in grouped.split(",")} <= labels[name], (grouped, expr)
