"""``GET /api/v1/openapi.json`` (server/openapi.py): a valid OpenAPI document, built from the route table,
that names every JSON API route the app serves and no other; and schemathesis, generating requests from it
against a real server, finds no server error and no answer that breaks the document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import positive_data_acceptance
from starlette.routing import BaseRoute, Route

from scrawn.server.app import create_app
from scrawn.server.config import Settings
from tests.conftest import SECRET, ServerHandle, make_server

EXAMPLES = 8  # per operation: about 30 operations, so the whole run stays well under a minute


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    data_dir = tmp_path_factory.mktemp("openapi")
    handle = make_server(f"sqlite:///{data_dir / 'scrawn.db'}", data_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def served_operations(tmp_path: Path) -> set[tuple[str, str]]:
    """(METHOD, path) of every route under /api/v1 in the app's own route table."""
    app = create_app(Settings(data_dir=tmp_path, secret=SECRET))
    routes: list[BaseRoute] = app.routes
    assert all(isinstance(r, Route) for r in routes if getattr(r, "path", "").startswith("/api/"))
    return {
        (method, r.path)
        for r in routes
        if isinstance(r, Route) and r.path.startswith("/api/v1")
        for method in (r.methods or set()) - {"HEAD"}
    }


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_the_document_is_valid_openapi_and_needs_no_key(sqlite_server: ServerHandle) -> None:
    answer = httpx.get(f"{sqlite_server.base_url}/api/v1/openapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    tags = {op["tags"][0] for item in doc["paths"].values() for op in item.values()}
    assert tags >= {"tags", "expressions", "event prices", "model prices", "payments", "webhooks"}
    assert tags >= {"quarantine", "keys", "portal links"}


def test_every_route_is_documented_and_every_documented_route_is_served(
    sqlite_server: ServerHandle, tmp_path: Path
) -> None:
    doc = httpx.get(f"{sqlite_server.base_url}/api/v1/openapi.json").json()
    assert documented_operations(doc) == served_operations(tmp_path)
    # And the server really answers each one: never Starlette's bare 404 (no route) or 405 (no method).
    headers = {"authorization": f"Bearer {sqlite_server.dash_key}"}
    with httpx.Client(base_url=sqlite_server.base_url, headers=headers) as client:
        for method, path in sorted(documented_operations(doc)):
            answer = client.request(method, re.sub(r"{\w+}", "missing", path))
            assert answer.status_code != 405, (method, path)
            assert answer.headers["content-type"].startswith("application/json"), (method, path, answer.text)


def test_a_route_without_a_declaration_fails_the_document() -> None:
    from scrawn.server.openapi import document

    async def undeclared(_: Any) -> None: ...

    with pytest.raises(ValueError, match=r"/api/v1/new declares no OpenAPI operation"):
        document([Route("/api/v1/new", undeclared, methods=["GET"])], "0")


def test_schemathesis_finds_no_server_error(module_server: ServerHandle) -> None:
    """On SQLite and PostgreSQL: what one database stores as text, the other may refuse (a NUL byte)."""
    doc = httpx.get(f"{module_server.base_url}/api/v1/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)

    @schema.auth()
    class DashKey:  # through schemathesis, so that its check of calls without a key can take it away
        def get(self, case: Any, context: Any) -> str:
            return module_server.dash_key

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {f"{m} {p}" for m, p in documented_operations(doc)}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            # Without positive_data_acceptance: a schema cannot say that an expression must parse or a
            # currency must be the project's, so schema-valid bodies are refused (400) by design.
            case.call_and_validate(
                base_url=module_server.base_url, excluded_checks=[positive_data_acceptance]
            )

        try:
            run()
        except Exception as e:  # collect every operation's failure, then report them together
            failures[op.label] = str(e)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
