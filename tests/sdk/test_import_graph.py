"""The SDK's modules import each other without a circle (issue 10): the graph of top-level imports among
``src/scrawn/*.py`` (the server and the generated protos aside) is acyclic."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[2] / "src" / "scrawn"


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The ``scrawn.*`` modules one import statement names (``from scrawn import _core`` names
    ``scrawn._core``; ``from scrawn._core import X`` names ``scrawn._core``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:
        return []
    if node.module == "scrawn":
        return [f"scrawn.{alias.name}" for alias in node.names]
    return [node.module]


def import_graph() -> dict[str, set[str]]:
    modules = {f"scrawn.{path.stem}" for path in SDK.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for module in sorted(modules):
        tree = ast.parse((SDK / f"{module.removeprefix('scrawn.')}.py").read_text())
        edges = {
            target
            for node in tree.body  # top-level statements only: not TYPE_CHECKING blocks nor functions
            if isinstance(node, ast.Import | ast.ImportFrom)
            for target in _targets(node)
        }
        graph[module] = {t for t in edges if t in modules and t != module}
    return graph


def test_the_graph_sees_the_sdk_modules() -> None:
    graph = import_graph()
    assert "scrawn._sync" in graph and "scrawn.ai" in graph
    assert "scrawn._client_base" in graph["scrawn._sync"]
    assert not any(m.startswith(("scrawn.server", "scrawn._proto")) for m in graph)


def test_sdk_modules_import_each_other_without_a_cycle() -> None:
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle among SDK modules: {' -> '.join(error.args[1])}")
    assert order


def test_integrations_depend_on_the_client_interface_not_the_clients() -> None:
    graph = import_graph()
    clients = {"scrawn._sync", "scrawn._async"}
    for module in ("scrawn.ai", "scrawn.middleware", "scrawn._ai_events", "scrawn._ai_stream"):
        assert not graph[module] & clients, module
        assert "scrawn._client_base" in graph[module], module
    for module in ("scrawn._ai_wrappers", "scrawn._track", "scrawn._events", "scrawn._integrations"):
        assert not graph[module] & clients, module
