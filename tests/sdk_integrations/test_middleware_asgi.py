"""ASGI middleware on a real Starlette app served by uvicorn, billing into a real ``scrawn serve``."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from scrawn import AsyncScrawn, Scrawn
from scrawn._retry import ErrorContext
from scrawn.errors import ScrawnError, ValidationError
from scrawn.middleware import ExtractorError, ScrawnASGIMiddleware, middleware_event_consumer
from tests.conftest import ServerHandle
from tests.sdk_integrations.helpers import closed_port_url, metadata, new_user, serve_asgi, stored

WHITELIST = ["/api/**", "/fail", "/redirect", "/raise", "/stream"]
BLACKLIST = ["/api/*/secret", "/api/admin/**"]


def build_app(**middleware: Any) -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def compute(request: Request) -> Response:
        request.state.units = 3  # the extractor reads it after the response
        return PlainTextResponse("computed")

    async def fail(request: Request) -> Response:
        return PlainTextResponse("nope", status_code=500)

    async def redirect(request: Request) -> Response:
        return RedirectResponse("/api/v1/users", status_code=302)

    async def crash(request: Request) -> Response:
        raise RuntimeError("handler crashed")

    async def stream(request: Request) -> Response:
        async def body() -> Any:
            for part in (b"a", b"b", b"c"):
                yield part

        return StreamingResponse(body())

    app = Starlette(
        routes=[
            Route("/api/v1/users", ok),
            Route("/api/v1/users/{uid}", ok),
            Route("/api/v1/compute", compute),
            Route("/api/v1/secret", ok),
            Route("/api/admin/x/y", ok),
            Route("/health", ok),
            Route("/fail", fail),
            Route("/redirect", redirect),
            Route("/raise", crash),
            Route("/stream", stream),
        ]
    )
    app.add_middleware(ScrawnASGIMiddleware, **middleware)
    return app


def extractor(request: Request) -> dict[str, Any] | None:
    user = request.headers.get("x-user-id")
    if user == "explode":
        raise KeyError("no such user")
    if request.headers.get("x-skip"):
        return None
    debit: Any = getattr(request.state, "units", None) or request.headers.get("x-debit", "1")
    return {"user_id": user, "debit": debit, "metadata": {"path": request.url.path}}


def billed_paths(server: ServerHandle, user: str) -> list[str]:
    return sorted(metadata(row)["path"] for row in stored(server, user))


def test_bills_successful_whitelisted_requests_only(module_server: ServerHandle) -> None:
    errors: list[ScrawnError] = []
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app(
        client=client,
        extractor=extractor,
        whitelist=WHITELIST,
        blacklist=BLACKLIST,
        on_error=lambda error, ctx: errors.append(error),
    )
    user = new_user("asgi")
    expected = {
        "/api/v1/users": 200,
        "/api/v1/users/42": 200,
        "/api/v1/compute": 200,
        "/api/v1/secret": 200,  # blacklisted
        "/api/admin/x/y": 200,  # blacklisted
        "/health": 200,  # not whitelisted
        "/fail": 500,  # failed: not billed
        "/redirect": 302,  # 3xx: billed
        "/api/v1/missing": 404,
        "/raise": 500,
        "/stream": 200,
    }
    with serve_asgi(app) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        for path, status in expected.items():
            # Starlette re-raises a handler's exception after its 500 and uvicorn then drops the
            # connection: give that request a connection of its own.
            res = (httpx if path == "/raise" else http).get(f"{url}{path}", headers={"x-user-id": user})
            assert res.status_code == status, path
        assert http.get("/api/v1/users", headers={"x-user-id": user, "x-skip": "1"}).status_code == 200
        assert http.get("/stream", headers={"x-user-id": user}).text == "abc"
    assert client.flush(10)
    assert billed_paths(module_server, user) == sorted(
        ["/api/v1/users", "/api/v1/users/42", "/api/v1/compute", "/redirect", "/stream", "/stream"]
    )
    rows = {metadata(r)["path"]: r for r in stored(module_server, user)}
    assert {r.basic_usage_type for r in rows.values()} == {"MIDDLEWARE_CALL"}
    assert {r.event_type for r in rows.values()} == {"BASIC_USAGE"}
    assert rows["/api/v1/compute"].debit == Decimal(3)  # from request.state set by the endpoint
    assert rows["/api/v1/users"].debit == Decimal(1)
    assert errors == []
    client.close()


def test_debits_tags_and_fractions(module_server: ServerHandle) -> None:
    dash = {"authorization": f"Bearer {module_server.dash_key}"}
    res = httpx.post(
        f"{module_server.base_url}/api/v1/tags", json={"key": "API_CALL", "price": "2.5"}, headers=dash
    )
    assert res.status_code in (200, 201), res.text

    from scrawn import mul, tag

    def by_header(request: Request) -> dict[str, Any]:
        kind = request.headers["x-kind"]
        debit = {"tag": tag("API_CALL"), "expr": mul(tag("API_CALL"), 2), "fraction": "0.125"}[kind]
        return {"user_id": request.headers["x-user-id"], "debit": debit, "metadata": {"kind": kind}}

    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    user = new_user("asgi-debit")
    with serve_asgi(build_app(client=client, extractor=by_header)) as url:
        for kind in ("tag", "expr", "fraction"):
            assert httpx.get(f"{url}/health", headers={"x-user-id": user, "x-kind": kind}).status_code == 200
    assert client.flush(10)
    debits = {metadata(r)["kind"]: r.debit for r in stored(module_server, user)}
    assert debits == {"tag": Decimal("2.5"), "expr": Decimal(5), "fraction": Decimal("0.125")}
    client.close()


def test_extractor_failures_never_break_the_response(module_server: ServerHandle) -> None:
    reported: list[tuple[ScrawnError, ErrorContext]] = []
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app(client=client, extractor=extractor, on_error=lambda e, ctx: reported.append((e, ctx)))
    user = new_user("asgi-err")
    with serve_asgi(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/v1/users", headers={"x-user-id": "explode"}).text == "ok"
        assert http.get("/api/v1/users", headers={"x-user-id": ""}).text == "ok"  # invalid user id
        assert http.get("/api/v1/users", headers={"x-user-id": user, "x-debit": "-5"}).text == "ok"
        assert http.get("/api/v1/users", headers={"x-user-id": user, "x-debit": "NaN"}).text == "ok"
        assert http.get("/api/v1/users", headers={"x-user-id": user}).text == "ok"  # this one bills
    assert client.flush(10)
    assert len(stored(module_server, user)) == 1
    kinds = [type(e) for e, _ in reported]
    assert kinds[0] is ExtractorError and isinstance(reported[0][0].__cause__, KeyError)
    assert reported[0][0].field == "extractor"
    assert all(issubclass(k, ValidationError) for k in kinds[1:]) and len(kinds) == 4
    assert [e.field for e, _ in reported[1:]] == ["user_id", "debit", "debit"]
    assert reported[0][1].operation == "middleware_event_consumer"
    assert reported[0][1].retry() is False  # nothing to retry: the request is over
    client.close()


def test_async_extractor_raw_scope_and_bad_return_values(module_server: ServerHandle) -> None:
    reported: list[ScrawnError] = []
    seen_scopes: list[dict[str, Any]] = []

    async def async_extractor(scope: dict[str, Any]) -> Any:
        seen_scopes.append(scope)
        headers = dict(scope["headers"])
        mode = headers.get(b"x-mode", b"ok").decode()
        if mode == "list":
            return ["not", "a", "mapping"]
        if mode == "camel":
            return {"userId": "u", "debit": 1}
        if mode == "missing":
            return {"user_id": headers[b"x-user-id"].decode()}
        return {"user_id": headers[b"x-user-id"].decode(), "debit": 2}

    client = AsyncScrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app(
        client=client, extractor=async_extractor, raw_request=True, on_error=lambda e, ctx: reported.append(e)
    )
    user = new_user("asgi-raw")
    with serve_asgi(app) as url, httpx.Client(base_url=url) as http:
        for mode in ("list", "camel", "missing", "ok"):
            assert http.get("/api/v1/users", headers={"x-user-id": user, "x-mode": mode}).text == "ok"
    assert seen_scopes and seen_scopes[0]["type"] == "http"
    deadline = time.monotonic() + 10
    while len(stored(module_server, user)) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = stored(module_server, user)
    assert [r.debit for r in rows] == [Decimal(2)]
    assert [e.field for e in reported] == ["extractor", "extractor.userId", "extractor.debit"]


def test_bill_failed_bills_every_status(module_server: ServerHandle) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    app = build_app(client=client, extractor=extractor, whitelist=WHITELIST, bill_failed=True)
    user = new_user("asgi-failed")
    with serve_asgi(app) as url, httpx.Client(base_url=url) as http:
        assert http.get("/fail", headers={"x-user-id": user}).status_code == 500
        assert httpx.get(f"{url}/raise", headers={"x-user-id": user}).status_code == 500
        assert http.get("/api/v1/nothing", headers={"x-user-id": user}).status_code == 404
        assert http.get("/health", headers={"x-user-id": user}).status_code == 200  # not whitelisted
    assert client.flush(10)
    assert billed_paths(module_server, user) == ["/api/v1/nothing", "/fail", "/raise"]
    client.close()


def test_factory_detects_asgi_and_plugs_into_add_middleware(module_server: ServerHandle) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url, flush_interval=0.05)
    consumer = middleware_event_consumer(client, extractor=extractor, whitelist=["/api/v1/users"])
    user = new_user("asgi-factory")

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    plain = Starlette(routes=[Route("/api/v1/users", ok), Route("/other", ok)])
    wrapped = consumer(plain)
    assert isinstance(wrapped, ScrawnASGIMiddleware)

    added = Starlette(routes=[Route("/api/v1/users", ok)])
    added.add_middleware(consumer)  # type: ignore[arg-type]
    for app in (wrapped, added):
        with serve_asgi(app) as url:
            assert httpx.get(f"{url}/api/v1/users", headers={"x-user-id": user}).status_code == 200
            if app is wrapped:
                assert httpx.get(f"{url}/other", headers={"x-user-id": user}).status_code == 200
    assert client.flush(10)
    assert billed_paths(module_server, user) == ["/api/v1/users", "/api/v1/users"]
    client.close()


@pytest.mark.parametrize("down", ["refused", "timeout"])
def test_billing_backend_down_does_not_affect_responses(down: str) -> None:
    from tests.sdk_integrations.helpers import blackhole

    with blackhole() as hole:
        base = closed_port_url() if down == "refused" else hole
        # A billing call that waits 600 s on the silent server: a response that waited for it would
        # time out below.
        client = Scrawn("scrn_live_" + "a" * 32, base, timeout=600, flush_interval=0.05, max_retries=0)
        app = build_app(client=client, extractor=extractor)
        user = new_user("asgi-down")
        with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            http.get("/api/v1/users", headers={"x-user-id": user})  # warm up the connection
            for _ in range(40):
                res = http.get("/api/v1/users", headers={"x-user-id": user})
                assert res.status_code == 200 and res.text == "ok"
        assert client.pending_count > 0  # buffered, waiting for the server to come back
        assert client.close(timeout=0.2) is False


def test_options_are_validated_up_front(module_server: ServerHandle) -> None:
    client = Scrawn(module_server.live_key, module_server.base_url)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    cases: list[tuple[dict[str, Any], str]] = [
        ({"client": None, "extractor": extractor}, "client"),
        ({"client": "scrn_live_x", "extractor": extractor}, "client"),
        ({"client": client, "extractor": "nope"}, "extractor"),
        ({"client": client, "extractor": extractor, "whitelist": "/api/**"}, "whitelist"),
        ({"client": client, "extractor": extractor, "whitelist": ["/ok", 3]}, "whitelist[1]"),
        ({"client": client, "extractor": extractor, "blacklist": [""]}, "blacklist[0]"),
        ({"client": client, "extractor": extractor, "blacklist": ["/a\x00"]}, "blacklist[0]"),
        ({"client": client, "extractor": extractor, "bill_failed": "yes"}, "bill_failed"),
        ({"client": client, "extractor": extractor, "on_error": 42}, "on_error"),
        ({"client": client, "extractor": extractor, "raw_request": 1}, "raw_request"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValidationError) as info:
            ScrawnASGIMiddleware(app, **kwargs)
        assert info.value.field == field, kwargs
        with pytest.raises(ValidationError) as info:
            middleware_event_consumer(**kwargs)
        assert info.value.field == field, kwargs
    with pytest.raises(ValidationError) as info:
        middleware_event_consumer(client, extractor=extractor)(42)
    assert info.value.field == "app"
    client.close()
