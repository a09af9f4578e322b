"""The server's modules import each other without a circle (issue 10): the graph of top-level imports among
``src/scrawn/server/**`` is acyclic, so domains depend on each other in one direction only."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module → the server modules its top-level statements import (``from pkg import mod`` names
    ``pkg.mod`` when that is a module, else ``pkg``; TYPE_CHECKING blocks and functions are not read)."""
    files = {_name(p, src): p for p in (src / "scrawn" / "server").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = {f"{node.module}.{a.name}" for a in node.names} & files.keys()
                edges |= subs or {node.module}
        graph[module] = {t for t in edges if t in files and t != module}
    return graph


def test_the_graph_sees_the_server_modules() -> None:
    graph = import_graph()
    assert "scrawn.server.ledger.service" in graph["scrawn.server.wallets.service"]
    assert "scrawn.server.pricing.types" in graph["scrawn.server.events.intake"]


def test_server_modules_import_each_other_without_a_cycle() -> None:
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle among server modules: {' -> '.join(error.args[1])}")
    assert order
