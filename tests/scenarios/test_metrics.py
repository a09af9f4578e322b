"""``/metrics`` (DESIGN §9, docs/configuration.md): request counts and latency by route template or RPC method
and result code, events ingested by outcome, group-commit flush sizes, and the webhook outbox depth."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scrawn._proto.event.v1 import event_pb2 as ev
from tests.clients import REGISTER, STREAM, ConnectClient, GrpcClient, GrpcWebClient, RpcError, bearer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server) -> tuple[str, Samples]:
    res = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(res.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return res.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(samples: Samples, route: str, code: str) -> float:
    return value(samples, "scrawn_requests_total", route=route, code=code)


def basic(user: str, key: str = "", amount: int = 1) -> ev.RegisterEventRequest:
    return ev.RegisterEventRequest(
        type=ev.BASIC_USAGE, userId=user, idempotencyKey=key, basicUsage=ev.BasicUsage(amount=amount)
    )


def test_rpc_calls_and_ingest_are_counted(module_server) -> None:
    server = module_server
    _, before = scrape(server)
    key = f"metrics-{uuid.uuid4().hex}"
    with ConnectClient(server.base_url) as connect:
        assert not connect.unary(REGISTER, basic("m1", key), bearer(server.live_key)).duplicate
        assert connect.unary(REGISTER, basic("m1", key), bearer(server.live_key)).duplicate
        with pytest.raises(RpcError) as err:
            connect.unary(REGISTER, basic("m1"), bearer("scrn_live_" + "x" * 32))
        assert err.value.code == "unauthenticated"
        # A Connect stream reports its result in the end-of-stream frame, under HTTP 200.
        stream = [ev.StreamEventRequest(type=ev.BASIC_USAGE, userId="m2", basicUsage=ev.BasicUsage(amount=1))]
        assert connect.stream(STREAM, stream * 3, bearer(server.live_key)).eventsProcessed == 3
        with pytest.raises(RpcError) as err:
            connect.stream(STREAM, stream, [])
        assert err.value.code == "unauthenticated"
    with GrpcClient(server.grpc_target) as grpc_client:
        grpc_client.unary(REGISTER, basic("m3"), bearer(server.live_key))
        with pytest.raises(RpcError) as err:
            grpc_client.unary(REGISTER, basic(""), bearer(server.live_key))  # no userId
        assert err.value.code == "invalid_argument"
    with GrpcWebClient(server.base_url) as web:
        web.unary(REGISTER, basic("m4"), bearer(server.live_key))
        with pytest.raises(RpcError) as err:
            web.unary(REGISTER, basic("m4"), [])
        assert err.value.code == "unauthenticated"

    _, after = scrape(server)

    def delta(route: str, code: str) -> float:
        return requests(after, route, code) - requests(before, route, code)

    # Connect ×2, gRPC ×1, gRPC-web ×1 succeeded; Connect, gRPC-web refused; gRPC invalid.
    assert delta(REGISTER, "ok") == 4
    assert delta(REGISTER, "unauthenticated") == 2
    assert delta(REGISTER, "invalid_argument") == 1
    assert delta(STREAM, "ok") == 1
    assert delta(STREAM, "unauthenticated") == 1
    hist = "scrawn_request_duration_seconds_count"
    assert value(after, hist, route=REGISTER) - value(before, hist, route=REGISTER) == 7

    def ingested(outcome: str) -> float:
        name = "scrawn_events_ingested_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert ingested("accepted") == 1 + 3 + 1 + 1
    assert ingested("duplicate") == 1
    assert ingested("failed") == 0
    flushes = value(after, "scrawn_commit_batch_size_count") - value(before, "scrawn_commit_batch_size_count")
    assert 1 <= flushes <= 5
    assert value(after, "scrawn_commit_batch_size_sum") - value(before, "scrawn_commit_batch_size_sum") == 7
    assert value(after, "scrawn_commit_duration_seconds_count") > 0


def test_http_routes_are_labelled_by_template_never_by_raw_path(module_server) -> None:
    server = module_server
    _, before = scrape(server)
    random_tag = f"t{uuid.uuid4().hex[:16]}"
    random_path = f"/no-such-{uuid.uuid4().hex}"
    auth = {"authorization": f"Bearer {server.dash_key}"}
    assert httpx.get(f"{server.base_url}/api/v1/tags", headers=auth).status_code == 200
    assert httpx.get(f"{server.base_url}/api/v1/tags").status_code == 401
    deleted = httpx.delete(f"{server.base_url}/api/v1/tags/{random_tag}", headers=auth).status_code
    assert deleted in (400, 404)
    assert httpx.get(f"{server.base_url}{random_path}").status_code == 404
    # An unknown method under a served RPC service is not a label either.
    unknown_method = f"/event.v1.EventService/Nope{uuid.uuid4().hex}"
    assert httpx.post(f"{server.base_url}{unknown_method}", json={}).status_code != 200

    text, after = scrape(server)

    def delta(route: str, code: str) -> float:
        return requests(after, route, code) - requests(before, route, code)

    assert delta("/api/v1/tags", "200") == 1
    assert delta("/api/v1/tags", "401") == 1
    assert delta("/api/v1/tags/{key}", str(deleted)) == 1
    assert delta("other", "404") >= 1
    assert requests(after, "/readyz", "200") >= 1  # the fixture polled it until the server was ready
    for raw in (random_tag, random_path, unknown_method):
        assert raw not in text


def test_gauges_are_reported(module_server) -> None:
    scrape(module_server)  # counted in the next one, whichever test ran before this one
    text, samples = scrape(module_server)
    assert ("scrawn_webhook_outbox_pending", frozenset()) in samples
    assert value(samples, "scrawn_database_up") == 1
    assert "# HELP scrawn_requests_total" in text
    # The previous scrape is itself counted.
    assert requests(samples, "/metrics", "200") >= 1


async def test_scrape_answers_when_the_database_is_down() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from scrawn.server.db.engine import Database
    from scrawn.server.metrics import Metrics

    db = Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    app = Starlette(routes=[Route("/metrics", Metrics().endpoint(db))])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            res = await client.get("/metrics")
    finally:
        await db.dispose()
    assert res.status_code == 200
    assert "scrawn_database_up 0.0" in res.text


async def test_scrawn_metrics_0_removes_the_endpoint(tmp_path, monkeypatch) -> None:
    from scrawn.server.app import create_app
    from scrawn.server.config import Settings

    monkeypatch.setenv("SCRAWN_METRICS", "0")
    settings = Settings.from_env(data_dir=tmp_path, secret="s" * 32)
    assert not settings.metrics
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/metrics")).status_code == 404
    finally:
        await app.services.db.dispose()
