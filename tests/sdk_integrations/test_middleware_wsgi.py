"""WSGI middleware on a real Flask app served by werkzeug, billing into a real ``scrawn serve``."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from flask import Flask, Response, redirect, request
from werkzeug.wrappers import Request

from scrawn import Scrawn
from scrawn.errors import ScrawnError, ValidationError
from scrawn.middleware import ExtractorError, ScrawnWSGIMiddleware, middleware_event_consumer
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import (
    blackhole,
    closed_port_url,
    metadata,
    new_user,
    serve_wsgi,
    stored,
)

WHITELIST = ["/api/**", "/fail", "/redirect", "/raise", "/stream", "/broken-stream"]
BLACKLIST = ["/api/*/secret", "/api/admin/**"]


def build_app() -> Flask:
    app = Flask("scrawn-test")

    @app.get("/api/v1/users")
    @app.get("/api/v1/users/<uid>")
    @app.get("/api/v1/secret")
    @app.get("/api/admin/x/y")
    @app.get("/health")
    def ok(uid: str | None = None) -> str:
        return "ok"

    @app.get("/api/v1/compute")
    def compute() -> str:
        request.environ["scrawn.units"] = 3  # read by the extractor after the response
        return "computed"

    @app.get("/fail")
    def fail() -> tuple[str, int]:
        return "nope", 503

    @app.get("/redirect")
    def go() -> Any:
        return redirect("/api/v1/users", code=302)

    @app.get("/raise")
    def crash() -> str:
        raise RuntimeError("handler crashed")

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            yield from ("a", "b", "c")

        return Response(body())

    @app.get("/broken-stream")
    def broken() -> Response:
        def body() -> Iterator[str]:
            yield "a"
            raise RuntimeError("the body failed half way")

        return Response(body())

    return app


def extractor(req: Request) -> dict[str, Any] | None:
    user = req.headers.get("x-user-id")
    if user == "explode":
        raise ZeroDivisionError("boom")
    if req.headers.get("x-skip"):
        return None
    debit = req.environ.get("scrawn.units") or req.headers.get("x-debit", "1")
    return {"user_id": user, "debit": debit, "metadata": {"path": req.path}}


def billed_paths(server: ServerHandle, user: str) -> list[str]:
    return sorted(metadata(row)["path"] for row in stored(server, user))


def test_bills_successful_whitelisted_requests_only(module_server: ServerHandle) -> None:
    errors: list[ScrawnError] = []
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app()
    app.wsgi_app = ScrawnWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        client=client,
        extractor=extractor,
        whitelist=WHITELIST,
        blacklist=BLACKLIST,
        on_error=lambda error, ctx: errors.append(error),
    )
    user = new_user("wsgi")
    expected = {
        "/api/v1/users": 200,
        "/api/v1/users/42": 200,
        "/api/v1/compute": 200,
        "/api/v1/secret": 200,
        "/api/admin/x/y": 200,
        "/health": 200,
        "/fail": 503,
        "/redirect": 302,
        "/api/v1/missing": 404,
        "/raise": 500,
        "/stream": 200,
    }
    with serve_wsgi(app) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        for path, status in expected.items():
            assert http.get(path, headers={"x-user-id": user}).status_code == status, path
        assert http.get("/api/v1/users", headers={"x-user-id": user, "x-skip": "1"}).status_code == 200
        assert http.get("/stream", headers={"x-user-id": user}).text == "abc"
        with pytest.raises(httpx.HTTPError):  # the body fails half way: the server drops the connection
            httpx.get(f"{url}/broken-stream", headers={"x-user-id": user}).read()
    assert client.flush(10)
    assert billed_paths(module_server, user) == sorted(
        ["/api/v1/users", "/api/v1/users/42", "/api/v1/compute", "/redirect", "/stream", "/stream"]
    )
    rows = {metadata(r)["path"]: r for r in stored(module_server, user)}
    assert {r.basic_usage_type for r in rows.values()} == {"MIDDLEWARE_CALL"}
    assert rows["/api/v1/compute"].debit == Decimal(3)
    assert errors == []
    client.close()


def test_extractor_failures_never_break_the_response(module_server: ServerHandle) -> None:
    reported: list[ScrawnError] = []
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app()
    app.wsgi_app = ScrawnWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, client=client, extractor=extractor, on_error=lambda e, ctx: reported.append(e)
    )
    user = new_user("wsgi-err")
    with serve_wsgi(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/users", headers={"x-user-id": "explode"}).text == "ok"
        assert http.get("/api/v1/users", headers={"x-debit": "1"}).text == "ok"  # no user header
        assert http.get("/api/v1/users", headers={"x-user-id": user, "x-debit": "lots"}).text == "ok"
        assert http.get("/api/v1/users", headers={"x-user-id": user}).text == "ok"
    assert client.flush(10)
    assert len(stored(module_server, user)) == 1
    # WSGI bills on close(), which the threaded server runs after the answer: the requests' reports may
    # arrive in any order, so each is matched by what it is.
    [broken] = [e for e in reported if isinstance(e, ExtractorError)]
    assert isinstance(broken.__cause__, ZeroDivisionError)
    invalid = sorted((e for e in reported if e is not broken), key=lambda e: str(e.field))
    assert [type(e) for e in invalid] == [ValidationError, ValidationError]
    assert [e.field for e in invalid] == ["debit", "user_id"]
    assert len(reported) == 3
    client.close()


def test_extractor_failures_are_logged_without_on_error(
    module_server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app()
    app.wsgi_app = ScrawnWSGIMiddleware(app.wsgi_app, client=client, extractor=extractor)  # type: ignore[method-assign]
    with serve_wsgi(app) as url:
        assert httpx.get(f"{url}/api/v1/users", headers={"x-user-id": "explode"}).text == "ok"
    assert any("not billed" in r.getMessage() and r.name == "scrawn.middleware" for r in caplog.records)
    client.close()


def test_raw_environ_bill_failed_and_factory(module_server: ServerHandle) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    user = new_user("wsgi-raw")
    environs: list[dict[str, Any]] = []

    def raw_extractor(environ: dict[str, Any]) -> dict[str, Any]:
        environs.append(environ)
        return {"user_id": environ["HTTP_X_USER_ID"], "debit": 1, "metadata": {"path": environ["PATH_INFO"]}}

    app = build_app()
    consumer = middleware_event_consumer(
        client, extractor=raw_extractor, bill_failed=True, raw_request=True, blacklist=["/health"]
    )
    wrapped = consumer(app.wsgi_app)
    assert isinstance(wrapped, ScrawnWSGIMiddleware)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    with serve_wsgi(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/fail", headers={"x-user-id": user}).status_code == 503
        assert http.get("/raise", headers={"x-user-id": user}).status_code == 500
        assert http.get("/health", headers={"x-user-id": user}).status_code == 200
    assert client.flush(10)
    assert isinstance(environs[0], dict) and "wsgi.input" in environs[0]
    assert billed_paths(module_server, user) == ["/fail", "/raise"]
    client.close()


def test_plain_wsgi_callable_and_app_exceptions(module_server: ServerHandle) -> None:
    """A bare WSGI function (no Flask): an exception raised by the app propagates unchanged and is not
    billed; the iterable's close() is called once."""
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"hello"

        def close(self) -> None:
            closed.append(True)

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/explode":
            raise ValueError("app failure")
        start_response("200 OK", [("content-type", "text/plain"), ("content-length", "5")])
        return Body()

    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    user = new_user("wsgi-plain")
    app = middleware_event_consumer(
        client, extractor=lambda req: {"user_id": req.headers["x-user-id"], "debit": 4}
    )(wsgi_app)
    with serve_wsgi(app) as url:
        assert httpx.get(f"{url}/x", headers={"x-user-id": user}).text == "hello"
        assert httpx.get(f"{url}/explode", headers={"x-user-id": user}).status_code == 500
    assert closed == [True]
    assert client.flush(10)
    assert [r.debit for r in stored(module_server, user)] == [Decimal(4)]
    client.close()


@pytest.mark.parametrize("down", ["refused", "timeout"])
def test_billing_backend_down_does_not_affect_responses(down: str) -> None:
    with blackhole() as hole:
        base = closed_port_url() if down == "refused" else hole
        # A billing call that waits 600 s on the silent server: a response that waited for it would
        # time out below.
        client = Scrawn("scrn_live_" + "b" * 32, base, timeout=600, flush_interval=0.05, max_retries=0)
        app = build_app()
        app.wsgi_app = ScrawnWSGIMiddleware(app.wsgi_app, client=client, extractor=extractor)  # type: ignore[method-assign]
        user = new_user("wsgi-down")
        with serve_wsgi(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            http.get("/api/v1/users", headers={"x-user-id": user})
            for _ in range(40):
                res = http.get("/api/v1/users", headers={"x-user-id": user})
                assert res.status_code == 200 and res.text == "ok"
        assert client.pending_count > 0
        assert client.close(timeout=0.2) is False


def test_options_are_validated_up_front(module_server: ServerHandle) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url)
    app = build_app()
    for kwargs, field in [
        ({"client": object(), "extractor": extractor}, "client"),
        ({"client": client, "extractor": None}, "extractor"),
        ({"client": client, "extractor": extractor, "blacklist": "/health"}, "blacklist"),
        ({"client": client, "extractor": extractor, "whitelist": [None]}, "whitelist[0]"),
        ({"client": client, "extractor": extractor, "bill_failed": None}, "bill_failed"),
    ]:
        with pytest.raises(ValidationError) as info:
            ScrawnWSGIMiddleware(app.wsgi_app, **kwargs)
        assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        ScrawnWSGIMiddleware(None, client=client, extractor=extractor)  # type: ignore[arg-type]
    assert info.value.field == "app"
    client.close()
