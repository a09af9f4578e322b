"""The JSON pricing API (DESIGN §4): ``/api/v1/tags`` and ``/api/v1/expressions`` for dash keys only,
validation naming the field, exact decimal prices, versioning (changes affect future events only), soft
deletion, and every event recording what priced it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scrawn._proto.event.v1 import event_pb2 as ev
from scrawn._proto.query.v1 import query_pb2 as q
from scrawn.server.db.schema import events
from tests.clients import QUERY, REGISTER, STREAM, ConnectClient, RpcError, bearer
from tests.conftest import ServerHandle, drop_pg_database, make_server, new_pg_database, run_async
from tests.scenarios.catalog_rows import store_unchecked_expressions


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_ok: bool
) -> Iterator[ServerHandle]:
    data_dir = tmp_path_factory.mktemp(f"pricing_{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'scrawn.db'}"
    else:
        if not postgres_ok:
            pytest.skip("PostgreSQL unavailable")
        url, pg_name = new_pg_database()
    handle = make_server(url, data_dir)
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
        if pg_name:
            drop_pg_database(pg_name)


class Api:
    """The JSON API with one key."""

    def __init__(self, server: ServerHandle, key: str | None) -> None:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=server.base_url, headers=headers, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def post(self, path: str, body: Any = None, *, raw: str | bytes | None = None) -> httpx.Response:
        if raw is not None:
            return self.http.post(path, content=raw, headers={"content-type": "application/json"})
        return self.http.post(path, json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path)


@pytest.fixture(scope="module")
def dash(srv: ServerHandle) -> Iterator[Api]:
    api = Api(srv, srv.dash_key)
    yield api
    api.http.close()


@pytest.fixture(scope="module")
def rpc(srv: ServerHandle) -> Iterator[ConnectClient]:
    with ConnectClient(srv.base_url, binary=True) as c:
        yield c


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


def charge(rpc: ConnectClient, srv: ServerHandle, **debit: Any) -> tuple[str, str]:
    """Register one event priced by ``debit``; returns (event id, idempotency key)."""
    key = f"price-{uuid.uuid4().hex}"
    res = rpc.unary(
        REGISTER,
        ev.RegisterEventRequest(
            type=ev.BASIC_USAGE, userId=f"user-{key}", idempotencyKey=key, basicUsage=ev.BasicUsage(**debit)
        ),
        bearer(srv.live_key),
    )
    return res.eventId, key


def debit_of(rpc: ConnectClient, srv: ServerHandle, key: str) -> str:
    where = q.FilterGroup(conditions=[q.FilterCondition(field="idempotencyKey", operator=q.EQ, value=key)])
    [row] = rpc.unary(QUERY, q.QueryEventsRequest(where=where), bearer(srv.live_key)).rows
    return str(row.debit_amount_exact)


def pricing_of(srv: ServerHandle, event_id: str) -> dict[str, Any]:
    """What the events.pricing column recorded for an event."""

    async def go() -> str:
        db = srv.db()
        try:
            async with db.read() as conn:
                return str(await conn.scalar(select(events.c.pricing).where(events.c.id == event_id)))
        finally:
            await db.dispose()

    return json.loads(run_async(go()))  # type: ignore[no-any-return]


def assert_error(
    res: httpx.Response, status: int, code: str, field: str | None = None, message: str | None = None
) -> None:
    assert res.status_code == status, res.text
    body = res.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["field"] == field, body
        assert f"{field}:" in body["message"], body
    if message is not None:
        assert body["message"] == message, body
    assert "Traceback" not in res.text


# ------------------------------------------------------------------------------------------ access


ENDPOINTS = [
    ("GET", "/api/v1/tags", None),
    ("POST", "/api/v1/tags", {"key": "DENIED_TAG", "price": "1"}),
    ("DELETE", "/api/v1/tags/DENIED_TAG", None),
    ("GET", "/api/v1/expressions", None),
    ("POST", "/api/v1/expressions", {"name": "DENIED_EXPR", "expression": "1"}),
    ("DELETE", "/api/v1/expressions/DENIED_EXPR", None),
]


def _send(api: Api, method: str, path: str, body: Any) -> httpx.Response:
    return (
        api.get(path) if method == "GET" else api.post(path, body) if method == "POST" else api.delete(path)
    )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_only_dash_keys_manage_pricing(
    srv: ServerHandle, dash: Api, method: str, path: str, body: Any
) -> None:
    for key, role in ((srv.live_key, "Live"), (srv.test_key, "Test")):
        api = Api(srv, key)
        assert_error(
            _send(api, method, path, body),
            403,
            "permission_denied",
            message=f"{role} keys cannot manage pricing",
        )
    assert_error(
        _send(Api(srv, None), method, path, body),
        401,
        "unauthenticated",
        message="Missing Authorization header",
    )
    assert_error(
        _send(Api(srv, "scrn_live_" + "x" * 32), method, path, body),
        401,
        "unauthenticated",
        message="Invalid API key: API key not found",
    )
    # nothing was created by the refused calls
    assert all(t["key"] != "DENIED_TAG" for t in dash.get("/api/v1/tags").json()["tags"])
    assert all(e["name"] != "DENIED_EXPR" for e in dash.get("/api/v1/expressions").json()["expressions"])


# -------------------------------------------------------------------------------------- validation


BAD_TAGS: list[tuple[str, Any, str]] = [
    ("lower-case key", {"key": "lower", "price": "1"}, "key"),
    ("empty key", {"key": "", "price": "1"}, "key"),
    ("missing key", {"price": "1"}, "key"),
    ("numeric key", {"key": 5, "price": "1"}, "key"),
    ("key with digit first", {"key": "1ABC", "price": "1"}, "key"),
    ("key with dash", {"key": "A-B", "price": "1"}, "key"),
    ("key 129", {"key": "K" * 129, "price": "1"}, "key"),
    ("key with NUL", {"key": "A\x00B", "price": "1"}, "key"),
    ("negative string", {"key": "NEG", "price": "-1"}, "price"),
    ("negative number", {"key": "NEG", "price": -0.5}, "price"),
    ("NaN string", {"key": "NAN", "price": "NaN"}, "price"),
    ("sNaN string", {"key": "NAN", "price": "sNaN"}, "price"),
    ("Infinity string", {"key": "INF", "price": "Infinity"}, "price"),
    ("text", {"key": "TXT", "price": "ten"}, "price"),
    ("empty price", {"key": "TXT", "price": ""}, "price"),
    ("missing price", {"key": "TXT"}, "price"),
    ("null price", {"key": "TXT", "price": None}, "price"),
    ("bool price", {"key": "TXT", "price": True}, "price"),
    ("list price", {"key": "TXT", "price": [1]}, "price"),
    ("object price", {"key": "TXT", "price": {"amount": 1}}, "price"),
    ("huge", {"key": "HUGE", "price": "1e30"}, "price"),
    ("huge number", {"key": "HUGE", "price": 10**30}, "price"),
    ("just over int64 micros", {"key": "HUGE", "price": "9223372036854.775808"}, "price"),
]


@pytest.mark.parametrize(("body", "field"), [b[1:] for b in BAD_TAGS], ids=[b[0] for b in BAD_TAGS])
def test_tag_validation_names_the_field(dash: Api, body: Any, field: str) -> None:
    assert_error(dash.post("/api/v1/tags", body), 400, "invalid_argument", field)


@pytest.mark.parametrize(
    "raw",
    [
        '{"key": "RAW", "price": NaN}',
        '{"key": "RAW", "price": Infinity}',
        '{"key": "RAW", "price": -Infinity}',
        "not json",
        "[1, 2]",
        '"text"',
        "",
        "{" * 100_000,
        '{"key": "RAW", "price": "1"' + " " * 70_000 + "}",
    ],
)
def test_bad_bodies_name_the_body(dash: Api, raw: str) -> None:
    for path in ("/api/v1/tags", "/api/v1/expressions"):
        assert_error(dash.post(path, raw=raw), 400, "invalid_argument", "body")
    assert all(t["key"] != "RAW" for t in dash.get("/api/v1/tags").json()["tags"])


@pytest.mark.parametrize(
    ("price", "stored"),
    [
        (0.1, "0.1"),  # a JSON number, read as decimal text: exactly 0.1, never 0.1000000000000000055…
        (0.3, "0.3"),
        (2.50, "2.5"),
        (100, "100"),
        (0, "0"),
        (1e-3, "0.001"),
        ("0.000001", "0.000001"),
        ("12.345", "12.345"),
        ("1e3", "1000"),
        ("9223372036854.775807", "9223372036854.775807"),  # the largest storable micro-unit count
    ],
)
def test_prices_are_stored_exactly(
    srv: ServerHandle, dash: Api, rpc: ConnectClient, price: Any, stored: str
) -> None:
    key = name("EXACT")
    res = dash.post("/api/v1/tags", {"key": key, "price": price})
    assert res.status_code == 201, res.text
    assert (res.json()["key"], res.json()["price"], res.json()["version"]) == (key, stored, 1)
    listed = {t["key"]: t for t in dash.get("/api/v1/tags").json()["tags"]}
    assert listed[key]["price"] == stored
    # and an event priced by the tag is billed exactly that
    _, idem = charge(rpc, srv, tag=key)
    assert debit_of(rpc, srv, idem) == stored


def test_price_finer_than_a_micro_unit_is_refused(dash: Api) -> None:
    """Storage holds micro-units: a finer price is refused (naming it), never stored as something else."""
    for price in ("0.0000001", "1.2345678", 1e-7):
        key = name("FINE")
        assert_error(
            dash.post("/api/v1/tags", {"key": key, "price": price}), 400, "invalid_argument", "price"
        )
        assert all(t["key"] != key for t in dash.get("/api/v1/tags").json()["tags"])
    key = name("FINE")
    assert dash.post("/api/v1/tags", {"key": key, "price": "1.2345670"}).json()["price"] == "1.234567"


BAD_EXPRESSIONS: list[tuple[str, Any, str]] = [
    ("lower name", {"name": "cost", "expression": "1"}, "name"),
    ("missing name", {"expression": "1"}, "name"),
    ("name 129", {"name": "N" * 129, "expression": "1"}, "name"),
    ("empty expression", {"name": "E", "expression": ""}, "expression"),
    ("blank expression", {"name": "E", "expression": "   "}, "expression"),
    ("missing expression", {"name": "E"}, "expression"),
    ("number expression", {"name": "E", "expression": 5}, "expression"),
    ("syntax", {"name": "E", "expression": "add(1,"}, "expression"),
    ("infix", {"name": "E", "expression": "1 + 2"}, "expression"),
    ("upper-case function", {"name": "E", "expression": "ADD(1, 2)"}, "expression"),
    ("one argument", {"name": "E", "expression": "add(1)"}, "expression"),
    ("negative literal", {"name": "E", "expression": "-1"}, "expression"),
    ("bad tag name", {"name": "E", "expression": "tag(lower)"}, "expression"),
    ("unknown function", {"name": "E", "expression": "pow(2, 3)"}, "expression"),
    ("python", {"name": "E", "expression": "__import__('os')"}, "expression"),
    ("too deep", {"name": "E", "expression": "add(1, " * 40 + "1" + ")" * 40}, "expression"),
    ("too long", {"name": "E", "expression": "add(" + "1, " * 1100 + "1)"}, "expression"),
]


@pytest.mark.parametrize(
    ("body", "field"), [b[1:] for b in BAD_EXPRESSIONS], ids=[b[0] for b in BAD_EXPRESSIONS]
)
def test_expression_validation_names_the_field(dash: Api, body: Any, field: str) -> None:
    assert_error(dash.post("/api/v1/expressions", body), 400, "invalid_argument", field)
    assert all(e["name"] != body.get("name") for e in dash.get("/api/v1/expressions").json()["expressions"])


def test_delete_validation_and_missing(dash: Api) -> None:
    assert_error(dash.delete("/api/v1/tags/lower"), 400, "invalid_argument", "key")
    assert_error(dash.delete("/api/v1/expressions/lower"), 400, "invalid_argument", "name")
    missing = name("MISSING")
    assert_error(
        dash.delete(f"/api/v1/tags/{missing}"), 404, "not_found", message=f"Tag not found: {missing}"
    )
    assert_error(
        dash.delete(f"/api/v1/expressions/{missing}"),
        404,
        "not_found",
        message=f"Expression not found: {missing}",
    )


# ------------------------------------------------------------------------- versions and what priced it


def test_tag_versions_affect_future_events_only(srv: ServerHandle, dash: Api, rpc: ConnectClient) -> None:
    tag = name("API_CALL")
    created = dash.post("/api/v1/tags", {"key": tag, "price": "1.5"})
    assert (created.status_code, created.json()["version"]) == (201, 1)
    e1, k1 = charge(rpc, srv, tag=tag)

    updated = dash.post("/api/v1/tags", {"key": tag, "price": "4"})
    assert (updated.status_code, updated.json()["version"], updated.json()["price"]) == (200, 2, "4")
    listed = [t for t in dash.get("/api/v1/tags").json()["tags"] if t["key"] == tag]
    assert [(t["price"], t["version"]) for t in listed] == [("4", 2)]
    e2, k2 = charge(rpc, srv, tag=tag)

    assert (debit_of(rpc, srv, k1), debit_of(rpc, srv, k2)) == ("1.5", "4")
    assert pricing_of(srv, e1) == {"tag": tag, "version": 1, "price": "1.5"}
    assert pricing_of(srv, e2) == {"tag": tag, "version": 2, "price": "4"}

    # delete: later events are kept for repricing, naming the tag; earlier ones keep their debit
    deleted = dash.delete(f"/api/v1/tags/{tag}")  # it priced two events: allowed, and counted
    assert (deleted.status_code, deleted.json()) == (200, {"deleted": tag, "recentEvents": 2})
    assert all(t["key"] != tag for t in dash.get("/api/v1/tags").json()["tags"])
    with pytest.raises(RpcError) as err:
        charge(rpc, srv, tag=tag)
    assert err.value.code == "failed_precondition"
    assert err.value.message == f"Event kept for repricing: basicUsage.tag: Tag not found: {tag}"
    res = rpc.stream(
        STREAM,
        [
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE, userId="pricing-user", basicUsage=ev.BasicUsage(tag=tag)
            ),
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE,
                userId="pricing-user",
                basicUsage=ev.BasicUsage(expr=f"mul(tag({tag}), 2)"),
            ),
            ev.StreamEventRequest(
                type=ev.BASIC_USAGE, userId="pricing-user", basicUsage=ev.BasicUsage(amount=1)
            ),
        ],
        bearer(srv.live_key),
    )
    assert [(f.eventIndex, f.errorCode) for f in res.failures] == [
        (0, "KEPT_FOR_REPRICING"),
        (1, "KEPT_FOR_REPRICING"),
    ]
    assert res.quarantined == 2
    assert all(f"Tag not found: {tag}" in f.message for f in res.failures)
    assert (debit_of(rpc, srv, k1), debit_of(rpc, srv, k2)) == ("1.5", "4")
    assert_error(dash.delete(f"/api/v1/tags/{tag}"), 404, "not_found", message=f"Tag not found: {tag}")

    # re-created: a new version, billed at the new price
    again = dash.post("/api/v1/tags", {"key": tag, "price": "7"})
    assert again.status_code in (200, 201) and again.json()["version"] == 4
    e4, k4 = charge(rpc, srv, tag=tag)
    assert debit_of(rpc, srv, k4) == "7"
    assert pricing_of(srv, e4)["version"] == 4


def test_named_expressions_version_and_record_what_priced(
    srv: ServerHandle, dash: Api, rpc: ConnectClient
) -> None:
    tag, cost = name("UNIT"), name("COST")
    assert dash.post("/api/v1/tags", {"key": tag, "price": "0.25"}).status_code == 201
    created = dash.post("/api/v1/expressions", {"name": cost, "expression": f"mul(tag({tag}), 3)"})
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["expression"], created.json()["version"]) == (
        cost,
        f"mul(tag({tag}), 3)",
        1,
    )
    listed = {e["name"]: e for e in dash.get("/api/v1/expressions").json()["expressions"]}
    assert listed[cost]["expression"] == f"mul(tag({tag}), 3)"

    text = f"add(expr({cost}), div(1, 3))"
    e1, k1 = charge(rpc, srv, expr=text)
    assert debit_of(rpc, srv, k1) == "1.083333"  # 0.75 + 1/3, rounded once, half-even
    assert pricing_of(srv, e1) == {"expr": text, "tags": {tag: 1}, "expressions": {cost: 1}}

    # change the expression and the tag: the first event keeps its price, new ones use the new versions
    assert (
        dash.post("/api/v1/expressions", {"name": cost, "expression": f"mul(tag({tag}), 10)"}).json()[
            "version"
        ]
        == 2
    )
    assert dash.post("/api/v1/tags", {"key": tag, "price": "0.5"}).json()["version"] == 2
    e2, k2 = charge(rpc, srv, expr=text)
    assert debit_of(rpc, srv, k2) == "5.333333"
    assert pricing_of(srv, e2) == {"expr": text, "tags": {tag: 2}, "expressions": {cost: 2}}
    assert debit_of(rpc, srv, k1) == "1.083333"

    # delete the expression: later events are kept for repricing, naming it; earlier ones are untouched
    deleted = dash.delete(f"/api/v1/expressions/{cost}")
    assert (deleted.status_code, deleted.json()) == (200, {"deleted": cost, "recentEvents": 2})
    assert all(e["name"] != cost for e in dash.get("/api/v1/expressions").json()["expressions"])
    with pytest.raises(RpcError) as err:
        charge(rpc, srv, expr=text)
    assert err.value.code == "failed_precondition" and f"Expression not found: {cost}" in err.value.message
    assert (debit_of(rpc, srv, k1), debit_of(rpc, srv, k2)) == ("1.083333", "5.333333")


def test_amount_and_inline_expression_record_what_priced(srv: ServerHandle, rpc: ConnectClient) -> None:
    e1, _ = charge(rpc, srv, amount=12)
    assert pricing_of(srv, e1) == {"amount": "12"}
    e2, k2 = charge(rpc, srv, expr="div(10, 4)")
    assert pricing_of(srv, e2) == {"expr": "div(10, 4)", "tags": {}, "expressions": {}}
    assert debit_of(rpc, srv, k2) == "2.5"


def test_a_stored_expression_cycle_never_bills(srv: ServerHandle, dash: Api, rpc: ConnectClient) -> None:
    """The API refuses to store a cycle (test_pricing_safety.py); one stored before that rule, written
    here straight into the database, still never bills."""
    a, b = name("CYCA"), name("CYCB")
    assert_error(
        dash.post("/api/v1/expressions", {"name": a, "expression": f"add(1, expr({b}))"}),
        400,
        "invalid_argument",
        "expression",
    )
    store_unchecked_expressions(srv, {a: f"add(1, expr({b}))", b: f"expr({a})"})
    with pytest.raises(RpcError) as err:
        charge(rpc, srv, expr=f"expr({a})")
    assert err.value.code == "invalid_argument"
    assert "cycle" in err.value.message and a in err.value.message and b in err.value.message


def test_tags_are_listed_sorted_with_their_latest_version(dash: Api) -> None:
    keys = sorted(name("LIST") for _ in range(3))
    for i, key in enumerate(reversed(keys)):
        assert dash.post("/api/v1/tags", {"key": key, "price": str(i)}).status_code == 201
    assert dash.post("/api/v1/tags", {"key": keys[0], "price": "9"}).status_code == 200
    listed = [t for t in dash.get("/api/v1/tags").json()["tags"] if t["key"] in keys]
    assert [(t["key"], t["price"], t["version"]) for t in listed] == [
        (keys[0], "9", 2),
        (keys[1], "1", 1),
        (keys[2], "0", 1),
    ]
    assert all(isinstance(t["createdAt"], int) for t in listed)


def test_server_log_is_clean(srv: ServerHandle) -> None:
    assert httpx.get(srv.base_url + "/healthz").status_code == 200
    assert "Traceback" not in srv.log()
